-- name: insert_passages
-- Writes new passages and their text, any number of documents at once: the search benchmark's
-- loader (the worker writes them in complete_jobs, with the same tsvector). Title weighs A, body D; the tenant is the document's own.
-- $1 text-search configuration, then arrays of equal length: $2 document ids, $3 versions,
-- $4 passage numbers, $5 titles, $6 bodies.
WITH input AS (
    SELECT d.tenant_id, u.document_id, u.version, u.passage_no, u.title, u.body
    FROM unnest($2::uuid[], $3::integer[], $4::integer[], $5::text[], $6::text[])
             AS u (document_id, version, passage_no, title, body)
    JOIN documents d ON d.id = u.document_id
), passages AS (
    INSERT INTO search_passages (tenant_id, document_id, passage_no, version, tsv)
    SELECT tenant_id, document_id, passage_no, version, searchhub_passage_tsv($1::regconfig, title, body)
    FROM input
)
INSERT INTO search_passage_texts (document_id, passage_no, title, body)
SELECT document_id, passage_no, title, body FROM input;

-- name: search_plan_by_index
-- For queries with a "phrase": the planner estimates a phrase as often as its words together, far
-- more often than words stand side by side, and would walk every passage newest first looking for
-- a rare phrase. Through the GIN index the work is bounded by the passages holding all its words.
SET LOCAL enable_indexscan = off;

-- name: search
-- One page of hits. Candidates: the tenant's matching passages (metadata filter applied), the
-- newest $8 of them; for all but very common words that is every match. They are ranked with
-- ts_rank_cd (title weight A = 1.0, body weight D = 0.1, no length normalisation), the best passage
-- per document counts, highest score first. ts_headline runs only on the page's passages, after
-- LIMIT; the snippet is HTML (text escaped, hits between $7's marks).
-- $1 tenant, $2 text-search configuration, $3 query in web-search syntax, $4 metadata filter
-- (jsonb object, containment) or NULL, $5 limit, $6 offset, $7 ts_headline options,
-- $8 candidate limit. "candidates" tells the caller whether the limit was reached.
-- The statement itself lives in searchhub_search() (sql/migrations/0004_security.sql), which runs
-- it outside row-level security for the session's own tenant so that the GIN index can serve it.
SELECT * FROM searchhub_search($1, $2::regconfig, $3, $4::jsonb, $5, $6, $7, $8);
