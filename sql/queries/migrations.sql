-- name: lock_migrations
-- Transaction-scoped: released at commit or rollback, even if the migrating process dies.
SELECT pg_advisory_xact_lock($1);

-- name: create_schema_migrations
-- The bookkeeping table itself, created before any migration runs.
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE schema_migrations IS 'Migrations from sql/migrations applied here, one row each.';
COMMENT ON COLUMN schema_migrations.version IS 'File name of the migration, e.g. 0001_core.sql.';
COMMENT ON COLUMN schema_migrations.checksum IS 'SHA-256 of the file as applied; a changed file is refused.';
COMMENT ON COLUMN schema_migrations.applied_at IS 'When it was applied.';

-- name: applied_migrations
SELECT version, checksum FROM schema_migrations;

-- name: record_migration
INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2);
