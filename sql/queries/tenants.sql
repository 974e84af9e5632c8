-- name: create_tenant
INSERT INTO tenants (name) VALUES ($1) RETURNING id;

-- name: get_tenant_by_name
SELECT id FROM tenants WHERE name = $1;

-- name: create_api_key
-- $1 tenant, $2 display prefix, $3 SHA-256 of the key.
INSERT INTO api_keys (tenant_id, prefix, key_hash) VALUES ($1, $2, $3) RETURNING id;

-- name: authenticate
-- The tenant of a live key, from the key's hash, and binds this session to it (searchhub.tenant_id,
-- which row-level security reads; the pool's RESET ALL clears it when the connection is released).
-- Touches last_used_at at most once a minute so that authentication is not a write per request.
WITH k AS (
    SELECT id, tenant_id, last_used_at FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL
), touched AS (
    UPDATE api_keys a SET last_used_at = now()
    FROM k
    WHERE a.id = k.id AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute')
)
SELECT tenant_id, set_config('searchhub.tenant_id', tenant_id::text, false) FROM k;

-- name: ensure_api_key
-- Like create_api_key, but a key that exists already (the fixed dev key) is left as it is.
INSERT INTO api_keys (tenant_id, prefix, key_hash) VALUES ($1, $2, $3)
ON CONFLICT (key_hash) DO NOTHING;

-- name: set_tenant
-- Binds this session to a tenant for row-level security, until the connection goes back to the pool.
SELECT set_config('searchhub.tenant_id', $1::text, false);

-- name: set_role
-- Switches this session to the restricted application role (searchhub_app), which RLS binds.
SELECT set_config('role', $1::text, false);

-- name: find_tenant
-- A tenant by name or by id (as text), for the CLI.
SELECT id, name FROM tenants WHERE name = $1 OR id::text = $1;

-- name: list_api_keys
SELECT prefix, created_at, last_used_at, revoked_at FROM api_keys WHERE tenant_id = $1 ORDER BY created_at;

-- name: revoke_api_key
-- Revokes at once: authentication reads api_keys on every request, nothing caches a key.
UPDATE api_keys SET revoked_at = now() WHERE prefix = $1 AND revoked_at IS NULL RETURNING tenant_id;
