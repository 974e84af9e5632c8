"""`searchhub migrate`: each migration once, safe twice and concurrently; everything commented."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from shared.migrations import available, migrate
from tests.conftest import Servers, _with_database


@pytest.fixture
async def empty_database(servers: Servers) -> AsyncIterator[str]:
    name = f"searchhub_migrate_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(servers.admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    yield _with_database(servers.admin_url, name)
    admin = await asyncpg.connect(servers.admin_url)
    await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    await admin.close()


async def test_migrate_twice_applies_each_migration_once(empty_database: str) -> None:
    conn = await asyncpg.connect(empty_database)
    try:
        first = await migrate(conn)
        second = await migrate(conn)
        recorded = await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")
    finally:
        await conn.close()

    assert first == [m.version for m in available()]
    assert second == []
    assert [r["version"] for r in recorded] == first


async def test_concurrent_migrations_apply_everything_once(empty_database: str) -> None:
    conns = [await asyncpg.connect(empty_database) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
    finally:
        for c in conns:
            await c.close()

    applied = [v for r in results for v in r]
    assert sorted(applied) == [m.version for m in available()]


async def test_every_table_view_and_column_has_a_comment(pool: asyncpg.Pool) -> None:
    missing = await pool.fetch(
        """
        SELECT c.relname, a.attname
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
        LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relkind IN ('r', 'v', 'm', 'p')
          AND (obj_description(c.oid, 'pg_class') IS NULL
               OR (a.attname IS NOT NULL AND col_description(c.oid, a.attnum) IS NULL))
        """
    )
    assert [(r["relname"], r["attname"]) for r in missing] == []


async def test_operator_views_exist(pool: asyncpg.Pool) -> None:
    assert await pool.fetch("SELECT * FROM index_job_overview LIMIT 1") is not None
    assert await pool.fetch("SELECT * FROM stuck_index_jobs LIMIT 1") is not None
