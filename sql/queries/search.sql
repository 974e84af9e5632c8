-- name: delete_passages
-- Removes a document's passages before its newer version's are written (same transaction).
DELETE FROM search_passages WHERE document_id = $1;

-- name: insert_passages
-- Writes passages, any number of documents at once (the worker writes one document's, the
-- benchmark loads many). Title weighs A, body D; the tenant is the document's own.
-- $1 text-search configuration, then arrays of equal length: $2 document ids, $3 versions,
-- $4 passage numbers, $5 titles, $6 bodies.
INSERT INTO search_passages (tenant_id, document_id, passage_no, version, title, body, tsv)
SELECT d.tenant_id, u.document_id, u.passage_no, u.version, u.title, u.body,
       setweight(to_tsvector($1::regconfig, coalesce(u.title, '')), 'A')
       || setweight(to_tsvector($1::regconfig, u.body), 'D')
FROM unnest($2::uuid[], $3::integer[], $4::integer[], $5::text[], $6::text[])
         AS u (document_id, version, passage_no, title, body)
JOIN documents d ON d.id = u.document_id;

-- name: search
-- One page of hits: the tenant's passages that match, ranked with ts_rank_cd (title weight A = 1.0,
-- body weight D = 0.1), the best passage per document, highest score first. ts_headline runs only
-- on the page's passages, after LIMIT; the snippet is HTML (text escaped, hits between $7's marks).
-- $1 tenant, $2 text-search configuration, $3 query in web-search syntax, $4 metadata filter
-- (jsonb object, containment) or NULL, $5 limit, $6 offset, $7 ts_headline options.
WITH query AS (
    SELECT websearch_to_tsquery($2::regconfig, $3) AS q
), ranked AS (
    SELECT DISTINCT ON (p.document_id)
           p.document_id, p.passage_no, ts_rank_cd('{0.1, 0.2, 0.4, 1.0}', p.tsv, query.q) AS score
    FROM search_passages p, query
    WHERE p.tenant_id = $1 AND p.tsv @@ query.q
    ORDER BY p.document_id, score DESC, p.passage_no
), page AS (
    SELECT r.document_id, r.passage_no, r.score, d.external_id, d.metadata
    FROM ranked r
    JOIN documents d ON d.id = r.document_id
    WHERE $4::jsonb IS NULL OR d.metadata @> $4::jsonb
    ORDER BY r.score DESC, r.document_id
    LIMIT $5 OFFSET $6
)
SELECT page.document_id, page.external_id, p.title, page.score, page.metadata,
       -- Escaped first: the headline parser would drop text that looks like a tag ("<daily>").
       ts_headline($2::regconfig, replace(replace(replace(p.body, '&', '&amp;'), '<', '&lt;'), '>', '&gt;'),
                   query.q, $7) AS snippet
FROM page
JOIN search_passages p ON p.document_id = page.document_id AND p.passage_no = page.passage_no
CROSS JOIN query
ORDER BY page.score DESC, page.document_id;
