-- name: ingest_documents
-- Writes documents (or, for a known external_id, its next version) and their queued index jobs in
-- one set-based statement: every accepted document goes through it, single posts (coalesced by
-- api/writer.py, or one at a time) and batches. A re-post while a job is still queued joins that
-- job: the partial unique index index_jobs_one_queued_per_document allows one queued job per
-- document, and the conflict updates the version it will index. Tenant ids are per item, though
-- the API sends one tenant per call (row-level security binds a connection to one tenant). The
-- caller guarantees that no (tenant, external_id) repeats within one call (one statement cannot
-- update a row twice). Rows are written in key order so that concurrent calls sharing external_ids
-- lock them in the same order and cannot deadlock. Returns one row per item, in input order (ord),
-- with the job actually answered (new or joined).
-- Arrays of equal length: $1 tenant ids, $2 document ids, $3 external_ids, $4 titles, $5 contents,
-- $6 content types, $7 metadata (JSON text), $8 job ids (used only when no queued job exists).
WITH item AS (
    SELECT i.*, coalesce('e:' || i.tenant_id::text || ':' || i.external_id, 'i:' || i.id::text) AS match_key
    FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::uuid[])
         WITH ORDINALITY
         AS i (tenant_id, id, external_id, title, content, content_type, metadata, job_id, ord)
), doc AS (
    INSERT INTO documents AS d (id, tenant_id, external_id, title, content, content_type, metadata)
    SELECT id, tenant_id, external_id, title, content, content_type, metadata::jsonb
    FROM item
    ORDER BY match_key
    ON CONFLICT ON CONSTRAINT documents_tenant_external_id DO UPDATE
        SET version      = d.version + 1,
            title        = EXCLUDED.title,
            content      = EXCLUDED.content,
            content_type = EXCLUDED.content_type,
            metadata     = EXCLUDED.metadata,
            updated_at   = now()
    RETURNING d.id, d.tenant_id, d.version,
              coalesce('e:' || d.tenant_id::text || ':' || d.external_id, 'i:' || d.id::text) AS match_key
), matched AS (
    SELECT item.ord, item.job_id, doc.tenant_id, doc.id AS document_id, doc.version
    FROM item JOIN doc USING (match_key)
), job AS (
    INSERT INTO index_jobs AS j (id, tenant_id, document_id, document_version)
    SELECT job_id, tenant_id, document_id, version FROM matched
    ORDER BY document_id
    ON CONFLICT (document_id) WHERE status = 'queued' DO UPDATE
        SET document_version = EXCLUDED.document_version,
            updated_at       = now()
    RETURNING j.id, j.document_id
)
SELECT matched.ord, matched.document_id, job.id AS job_id, matched.version
FROM matched JOIN job USING (document_id)
ORDER BY matched.ord;

-- name: get_document
-- One document with its latest job's id and status.
SELECT d.id AS document_id, d.external_id, d.title, d.content_type, d.metadata, d.version,
       lj.status, lj.id AS job_id, d.created_at, d.updated_at, d.indexed_at
FROM documents d
LEFT JOIN LATERAL (
    SELECT j.id, j.status FROM index_jobs j
    WHERE j.document_id = d.id
    ORDER BY j.created_at DESC, j.id DESC
    LIMIT 1
) lj ON true
WHERE d.id = $1 AND d.tenant_id = $2;

-- name: delete_document
-- Deletes a document; its jobs go with it (ON DELETE CASCADE), so a late delivery finds nothing.
DELETE FROM documents WHERE id = $1 AND tenant_id = $2 RETURNING id;
