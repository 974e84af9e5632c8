"""Tenant isolation enforced by PostgreSQL itself (row-level security), not only by our WHERE clauses."""

from __future__ import annotations

import asyncpg
import pytest

from shared.db import tenant_connection
from shared.queries import Q
from tests.conftest import Tenant
from tests.support import eventually

TENANT_TABLES = ("documents", "index_jobs", "idempotency_keys", "search_passages")
ALL_TENANT_DATA = (*TENANT_TABLES, "search_passage_texts")


async def _seed(tenant: Tenant) -> None:
    """A document with its job, idempotency record and (once indexed) search rows."""
    posted = await tenant.post("/v1/documents", {"content": "private words"}, **{"Idempotency-Key": "seed"})
    await eventually(lambda: tenant.job(posted.json()["job_id"]), lambda j: j["status"] == "indexed")


@pytest.mark.parametrize("table", ALL_TENANT_DATA)
async def test_query_that_forgot_the_tenant_sees_nothing(
    tenant: Tenant, other_tenant: Tenant, app_pool: asyncpg.Pool, pool: asyncpg.Pool, worker: None, table: str
) -> None:
    await _seed(tenant)
    await _seed(other_tenant)
    assert await pool.fetchval(f"SELECT count(*) FROM {table}") >= 2  # the owner sees all

    async with app_pool.acquire() as conn:
        assert await conn.fetchval("SELECT current_user") == "searchhub_app"
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0


@pytest.mark.parametrize("table", TENANT_TABLES)
async def test_bound_connection_sees_only_its_tenant(
    tenant: Tenant, other_tenant: Tenant, app_pool: asyncpg.Pool, worker: None, table: str
) -> None:
    await _seed(tenant)
    await _seed(other_tenant)

    async with tenant_connection(app_pool, tenant.id) as conn:
        owners = {r["tenant_id"] for r in await conn.fetch(f"SELECT tenant_id FROM {table}")}

    assert owners == {tenant.id}


async def test_bound_connection_cannot_write_for_another_tenant(
    tenant: Tenant, other_tenant: Tenant, app_pool: asyncpg.Pool
) -> None:
    async with tenant_connection(app_pool, tenant.id) as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute(
                "INSERT INTO documents (id, tenant_id, content) VALUES (gen_random_uuid(), $1, 'x')",
                other_tenant.id,
            )


async def test_tenant_binding_ends_with_the_connections_loan(
    tenant: Tenant, app_pool: asyncpg.Pool, worker: None
) -> None:
    await _seed(tenant)
    async with tenant_connection(app_pool, tenant.id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM documents") == 1

    async with app_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM documents") == 0


async def test_search_function_serves_only_the_sessions_own_tenant(
    tenant: Tenant, other_tenant: Tenant, app_pool: asyncpg.Pool, worker: None
) -> None:
    await _seed(tenant)
    args = ("english", "private", None, 10, 0, "", 100)

    async with tenant_connection(app_pool, other_tenant.id) as conn:
        smuggled = await conn.fetch(Q.search, tenant.id, *args)  # asks for another tenant's hits
    async with tenant_connection(app_pool, tenant.id) as conn:
        own = await conn.fetch(Q.search, tenant.id, *args)

    assert smuggled == []
    assert len(own) == 1
