-- name: claim_idempotency_key
-- Takes an Idempotency-Key for this request, or an expired record of it. No row: the key is live
-- and belongs to an earlier request (a concurrent one waits here until that one commits).
-- $1 tenant, $2 key, $3 request hash, $4 TTL seconds.
INSERT INTO idempotency_keys AS k (tenant_id, key, request_hash)
VALUES ($1, $2, $3)
ON CONFLICT (tenant_id, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, response = NULL, created_at = now()
    WHERE k.created_at < now() - make_interval(secs => $4)
RETURNING true AS claimed;

-- name: get_idempotency_key
SELECT request_hash, response FROM idempotency_keys WHERE tenant_id = $1 AND key = $2;

-- name: save_idempotency_response
UPDATE idempotency_keys SET response = $3 WHERE tenant_id = $1 AND key = $2;

-- name: purge_idempotency_keys
-- Forgets keys older than the TTL, at most $2 per call (each reconciler pass), so a large backlog
-- is worked off in small transactions. $1 TTL seconds, $2 most rows.
DELETE FROM idempotency_keys
WHERE (tenant_id, key) IN (
    SELECT tenant_id, key FROM idempotency_keys
    WHERE created_at < now() - make_interval(secs => $1)
    LIMIT $2
);
