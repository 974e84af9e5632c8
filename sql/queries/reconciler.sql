-- name: reconciler_try_lock
-- One reconciler at a time across all workers and `searchhub reconcile`: a session advisory lock,
-- released by reconciler_unlock, by the pool's reset of the connection, or when the session dies.
-- $1 the lock key (shared/constants.py RECONCILER_LOCK_KEY).
SELECT pg_try_advisory_lock($1);

-- name: reconciler_unlock
SELECT pg_advisory_unlock($1);

-- name: lock_expired_leases
-- Processing jobs whose worker stopped renewing the lease (killed, cut off, or its database calls
-- failed for longer than the lease). Locked for the caller's transaction; rows another session is
-- still writing are skipped and seen again on the next pass. $1 how many at most.
SELECT id, tenant_id, document_id, attempts
FROM index_jobs
WHERE status = 'processing' AND lease_expires_at < now()
ORDER BY lease_expires_at, id
LIMIT $1
FOR UPDATE SKIP LOCKED;

-- name: count_expired_leases
-- The dry run's view of lock_expired_leases: $1 max attempts. No locks taken.
SELECT count(*) FILTER (WHERE attempts < $1) AS to_requeue,
       count(*) FILTER (WHERE attempts >= $1) AS to_fail
FROM index_jobs
WHERE status = 'processing' AND lease_expires_at < now();

-- name: reclaim_job
-- processing -> queued for a job whose lease expired; the lost attempt counts. Refused while a
-- newer job is queued for the document (one queued job per document): the caller ends this one.
-- $1 job id, $2 the attempt that was lost, $3 the note kept as the job's last error.
UPDATE index_jobs j
SET status = 'queued', error = $3, updated_at = now(), lease_expires_at = NULL
WHERE j.id = $1 AND j.status = 'processing' AND j.attempts = $2 AND j.lease_expires_at < now()
  AND NOT EXISTS (
      SELECT 1 FROM index_jobs q WHERE q.document_id = j.document_id AND q.status = 'queued'
  )
RETURNING j.id;

-- name: fail_lost_job
-- processing -> failed for a job whose lease expired on its last attempt, or that a newer queued
-- job supersedes. $1 job id, $2 the attempt that was lost, $3 error.
UPDATE index_jobs
SET status = 'failed', error = $3, finished_at = now(), updated_at = now(), lease_expires_at = NULL
WHERE id = $1 AND status = 'processing' AND attempts = $2 AND lease_expires_at < now()
RETURNING id;

-- name: queued_jobs_to_check
-- Queued jobs untouched for $1 seconds: each should be waiting in Redis; the reconciler checks.
-- Keyset pages on (updated_at, id): $2/$3 the last row of the previous page or NULL, $4 page size.
SELECT id, tenant_id, document_id, updated_at
FROM index_jobs
WHERE status = 'queued'
  AND updated_at < now() - make_interval(secs => $1)
  AND ($2::timestamptz IS NULL OR (updated_at, id) > ($2::timestamptz, $3::uuid))
ORDER BY updated_at, id
LIMIT $4;
