"""Applies ``sql/migrations/NNNN_*.sql`` in order, each once, recorded in ``schema_migrations``.

Safe to run twice and from several processes at once: one transaction under an advisory lock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import asyncpg

from shared.constants import MIGRATION_LOCK_KEY

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE schema_migrations IS 'Migrations from sql/migrations applied here, one row each.';
COMMENT ON COLUMN schema_migrations.version IS 'File name of the migration, e.g. 0001_core.sql.';
COMMENT ON COLUMN schema_migrations.checksum IS 'SHA-256 of the file as applied; a changed file is refused.';
COMMENT ON COLUMN schema_migrations.applied_at IS 'When it was applied.';
"""


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(Exception):
    pass


def available() -> list[Migration]:
    folder = resources.files("sql").joinpath("migrations")
    files = sorted((e for e in folder.iterdir() if e.name.endswith(".sql")), key=lambda e: e.name)
    return [Migration(e.name, e.read_text()) for e in files]


async def migrate(conn: asyncpg.Connection) -> list[str]:
    """Applies what is missing; returns the versions applied now."""
    applied_now: list[str] = []
    async with conn.transaction():
        # Transaction-scoped: released at commit or rollback, even if this process dies.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(_BOOKKEEPING)
        done = {
            r["version"]: r["checksum"]
            for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for migration in available():
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"{migration.version} changed after it was applied; add a new migration"
                    )
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                migration.version,
                migration.checksum,
            )
            applied_now.append(migration.version)
    return applied_now
