"""Applies ``sql/migrations/NNNN_*.sql`` in order, each once, recorded in ``schema_migrations``.

Safe to run twice and from several processes at once: one transaction under an advisory lock.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import asyncpg

from shared.constants import MIGRATION_LOCK_KEY
from shared.queries import Q


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
        await conn.execute(Q.lock_migrations, MIGRATION_LOCK_KEY)
        await conn.execute(Q.create_schema_migrations)
        done = {r["version"]: r["checksum"] for r in await conn.fetch(Q.applied_migrations)}
        for migration in available():
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationError(
                        f"{migration.version} changed after it was applied; add a new migration"
                    )
                continue
            await conn.execute(migration.sql)
            await conn.execute(Q.record_migration, migration.version, migration.checksum)
            applied_now.append(migration.version)
    return applied_now
