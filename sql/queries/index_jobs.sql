-- name: get_job
SELECT id AS job_id, document_id, document_version, status, attempts, error,
       created_at, started_at, finished_at
FROM index_jobs
WHERE id = $1 AND tenant_id = $2;

-- name: list_jobs
-- Newest first, keyset-paginated on (created_at, id).
-- $1 tenant, $2 statuses or NULL for all, $3/$4 the cursor (created_at, id) or NULL, $5 limit.
SELECT id AS job_id, document_id, document_version, status, attempts, error,
       created_at, started_at, finished_at
FROM index_jobs
WHERE tenant_id = $1
  AND ($2::text[] IS NULL OR status = ANY ($2::text[]))
  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3::timestamptz, $4::uuid))
ORDER BY created_at DESC, id DESC
LIMIT $5;

-- name: retry_failed_job
-- Re-drives a failed job as a new queued job for its document's latest version (failed jobs never
-- move), joining a job already queued for that document. No row: not found, or not failed.
-- $1 failed job id, $2 tenant, $3 new job id.
WITH failed AS (
    SELECT document_id FROM index_jobs
    WHERE id = $1 AND tenant_id = $2 AND status = 'failed'
)
INSERT INTO index_jobs AS j (id, tenant_id, document_id, document_version)
SELECT $3, $2, d.id, d.version
FROM failed JOIN documents d ON d.id = failed.document_id
ON CONFLICT (document_id) WHERE status = 'queued' DO UPDATE
    SET document_version = EXCLUDED.document_version,
        updated_at       = now()
RETURNING j.id AS job_id, j.document_id;

-- name: claim_jobs
-- queued -> processing for a group of deliveries of one tenant, the first of a claim's two
-- statements (each its own transaction). Rows only for the jobs claimed: a duplicate or late delivery, or a deleted document,
-- claims nothing. attempts is also each attempt's fencing token: later writes require it unchanged.
-- The version to index is read by the next statement (claim_read_documents), not here: a re-post
-- that joined a job commits before this UPDATE can lock the row, but a join with documents here
-- would still see the document as of this statement's snapshot, older than that re-post, and the
-- re-posted version would never be indexed.
-- The jobs are found by id = ANY, never by joining the input first: that join let the planner
-- read the tenant's whole backlog per claim whenever statistics were stale.
-- $1 job ids, $2 their document ids (same order, no job twice), $3 tenant, $4 lease seconds.
UPDATE index_jobs j
SET status           = 'processing',
    attempts         = j.attempts + 1,
    started_at       = now(),
    updated_at       = now(),
    lease_expires_at = now() + make_interval(secs => $4)
WHERE j.id = ANY ($1::uuid[]) AND j.tenant_id = $3 AND j.status = 'queued'
  AND (j.id, j.document_id) IN (SELECT * FROM unnest($1::uuid[], $2::uuid[]))
RETURNING j.id AS job_id, j.attempts;

-- name: claim_read_documents
-- Second statement of a claim, and so with a newer snapshot: each claimed document's latest
-- version, the one its job indexes and records as its document_version when it completes (until
-- then document_version is the version of the last post that joined the job). Any re-post after
-- a job left queued makes a job of its own. $1 the job ids claim_jobs returned.
SELECT j.id AS job_id, j.document_id, d.version, d.title, d.content, d.content_type
FROM index_jobs j
JOIN documents d ON d.id = j.document_id
WHERE j.id = ANY ($1::uuid[]) AND j.status = 'processing';

-- name: renew_leases
-- Extends the leases of a worker's running attempts of one tenant. $1 job ids, $2 their attempts
-- (same order), $3 lease seconds. Jobs missing from the result were taken back: stop writing.
UPDATE index_jobs j
SET lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
WHERE j.id = ANY ($1::uuid[]) AND j.status = 'processing'
  AND (j.id, j.attempts) IN (SELECT * FROM unnest($1::uuid[], $2::integer[]))
RETURNING j.id AS job_id;

-- name: complete_jobs
-- processing -> indexed for a group of attempts of one tenant (no document twice), each only if
-- still its attempt, in one statement: each job records the version it indexed, its document's
-- indexed version advances, never backwards (an older job finishing late leaves a newer index
-- alone), and only then are the document's passages written: overwritten in place, the ones past
-- the new count deleted (those and the upserted ones are disjoint, so one statement can do both).
-- Only a document indexed before has passages to delete (they are written only here), and a group
-- with none skips the delete outright: planned without statistics on search_passages (a new or
-- freshly loaded table, until autovacuum analyzes it), the delete reads all the tenant's
-- passages through search_passages_tenant_seq for every document, which had cost first
-- indexings 2 ms a job by 20,000 documents. Re-indexings still pay it until the table is analyzed.
-- The documents' row locks are taken first: a concurrent job of the same document, or its DELETE,
-- waits, and then sees the version written here. A document locked by another transaction is
-- skipped, not waited for, so one long lock does not hold up the whole group: its job is "busy"
-- and completed alone (lock_document, then this statement).
-- $1 job ids, $2 their attempts, $3 their document ids, $4 the versions they indexed (same order),
-- $5 text-search configuration, then the passages as arrays of equal length: $6 document ids,
-- $7 versions, $8 passage numbers, $9 titles, $10 bodies. A row per job: whether it moved, and
-- whether its document was busy.
WITH input AS (
    SELECT * FROM unnest($1::uuid[], $2::integer[], $3::uuid[], $4::integer[])
                  AS i (job_id, attempt, document_id, version)
), free AS (
    SELECT d.id, d.indexed_version IS NOT NULL AS was_indexed FROM documents d
    WHERE d.id IN (SELECT document_id FROM input)
    FOR NO KEY UPDATE SKIP LOCKED
), job AS (
    UPDATE index_jobs j
    SET status = 'indexed', error = NULL, finished_at = now(), updated_at = now(), lease_expires_at = NULL,
        document_version = (SELECT input.version FROM input WHERE input.job_id = j.id)
    WHERE j.id = ANY ($1::uuid[]) AND j.status = 'processing'
      AND (j.id, j.attempts, j.document_id) IN (
          SELECT input.job_id, input.attempt, input.document_id
          FROM input JOIN free ON free.id = input.document_id
      )
    RETURNING j.id, j.document_id, j.document_version
), doc AS (
    UPDATE documents d
    SET indexed_version = job.document_version, indexed_at = now()
    FROM job JOIN free ON free.id = job.document_id
    WHERE d.id = job.document_id AND (d.indexed_version IS NULL OR d.indexed_version < job.document_version)
    RETURNING d.id, d.tenant_id, d.indexed_version, free.was_indexed
), passage AS (
    SELECT doc.tenant_id, p.document_id, p.version, p.passage_no, p.title, p.body
    FROM unnest($6::uuid[], $7::integer[], $8::integer[], $9::text[], $10::text[])
             AS p (document_id, version, passage_no, title, body)
    JOIN doc ON doc.id = p.document_id AND doc.indexed_version = p.version
), stale AS (
    DELETE FROM search_passages s
    USING doc
    WHERE EXISTS (SELECT FROM doc AS reindexed WHERE reindexed.was_indexed)
      AND doc.was_indexed AND s.document_id = doc.id
      AND s.passage_no >= (SELECT count(*) FROM passage WHERE passage.document_id = doc.id)
), passages AS (
    INSERT INTO search_passages AS s (tenant_id, document_id, passage_no, version, tsv)
    SELECT tenant_id, document_id, passage_no, version, searchhub_passage_tsv($5::regconfig, title, body)
    FROM passage
    ON CONFLICT (document_id, passage_no) DO UPDATE
        SET version = EXCLUDED.version, tsv = EXCLUDED.tsv, indexed_seq = DEFAULT
), texts AS (
    INSERT INTO search_passage_texts AS t (document_id, passage_no, title, body)
    SELECT document_id, passage_no, title, body FROM passage
    ON CONFLICT (document_id, passage_no) DO UPDATE SET title = EXCLUDED.title, body = EXCLUDED.body
)
SELECT input.job_id, job.id IS NOT NULL AS completed,
       free.id IS NULL AND EXISTS (SELECT 1 FROM documents d WHERE d.id = input.document_id) AS busy
FROM input
LEFT JOIN free ON free.id = input.document_id
LEFT JOIN job ON job.id = input.job_id;

-- name: lock_document
-- Waits for, and takes, a document's row lock until the transaction ends: a job whose document was
-- busy in its group's complete_jobs completes alone after it. $1 document id.
SELECT 1 FROM documents WHERE id = $1 FOR NO KEY UPDATE;

-- name: requeue_job
-- processing -> queued: this attempt failed and another is due (or the worker is stopping and hands
-- the job back, $4 = 1 to not count the attempt). Refused while a newer job is queued for the
-- document, which the one-queued-per-document index forbids: the caller then ends this job.
-- $1 job id, $2 attempt, $3 error or NULL, $4 attempts to give back (0 or 1).
UPDATE index_jobs j
SET status = 'queued', error = coalesce($3, j.error), attempts = j.attempts - $4,
    updated_at = now(), lease_expires_at = NULL
WHERE j.id = $1 AND j.status = 'processing' AND j.attempts = $2
  AND NOT EXISTS (
      SELECT 1 FROM index_jobs q WHERE q.document_id = j.document_id AND q.status = 'queued'
  )
RETURNING j.id;

-- name: fail_job
-- processing -> failed with the error, for this attempt only. $1 job id, $2 attempt, $3 error.
UPDATE index_jobs
SET status = 'failed', error = $3, finished_at = now(), updated_at = now(), lease_expires_at = NULL
WHERE id = $1 AND status = 'processing' AND attempts = $2
RETURNING id;

-- name: count_queued_capped
-- A tenant's queued jobs, counted up to $2 only: backpressure needs "over the limit or not", and
-- capping keeps the work bounded however deep the backlog. Uses index_jobs_queued_by_tenant.
SELECT count(*) FROM (
    SELECT 1 FROM index_jobs WHERE tenant_id = $1 AND status = 'queued' LIMIT $2
) AS capped;
