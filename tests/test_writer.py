"""Single posts that arrive together are coalesced into one statement, with single-post rules."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from arq.connections import ArqRedis

from shared.constants import QUEUE_NAME
from tests.conftest import Tenant
from tests.support import eventually


async def test_concurrent_posts_are_each_committed_answered_and_enqueued(
    tenant: Tenant, other_tenant: Tenant, pool: asyncpg.Pool, redis: ArqRedis
) -> None:
    posts = [
        t.post("/v1/documents", {"content": f"doc {i}"}) for i in range(30) for t in (tenant, other_tenant)
    ]
    responses = await asyncio.gather(*posts)

    assert {r.status_code for r in responses} == {202}
    bodies = [r.json() for r in responses]
    assert len({b["document_id"] for b in bodies}) == 60
    for owner in (tenant, other_tenant):
        assert await pool.fetchval("SELECT count(*) FROM documents WHERE tenant_id = $1", owner.id) == 30
    for body in bodies:
        await eventually(
            lambda b=body: redis.zscore(QUEUE_NAME, b["job_id"]), lambda s: s is not None, what="enqueued"
        )


async def test_concurrent_posts_of_one_external_id_become_successive_versions(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    posts = [tenant.post("/v1/documents", {"content": f"v{i}", "external_id": "same"}) for i in range(8)]
    bodies = [r.json() for r in await asyncio.gather(*posts)]

    assert len({b["document_id"] for b in bodies}) == 1
    assert len({b["job_id"] for b in bodies}) == 1  # all joined the one queued job
    document_id = uuid.UUID(bodies[0]["document_id"])
    row = await pool.fetchrow(
        "SELECT d.version, j.document_version FROM documents d JOIN index_jobs j ON j.document_id = d.id"
        " WHERE d.id = $1",
        document_id,
    )
    assert tuple(row) == (8, 8)


async def test_a_single_post_with_an_idempotency_key_replays_and_writes_nothing(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    first = await tenant.post("/v1/documents", {"content": "once"}, **{"Idempotency-Key": "k-1"})
    again = await tenant.post("/v1/documents", {"content": "once"}, **{"Idempotency-Key": "k-1"})
    other = await tenant.post("/v1/documents", {"content": "other"}, **{"Idempotency-Key": "k-1"})

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert other.status_code == 409
    assert await pool.fetchval("SELECT count(*) FROM documents WHERE tenant_id = $1", tenant.id) == 1
