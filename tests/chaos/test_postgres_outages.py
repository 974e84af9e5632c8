"""PostgreSQL restarted or stopped under a busy worker, and under the API."""

from __future__ import annotations

import asyncio

import pytest

from shared.constants import QUEUE_NAME
from shared.queue import create_redis
from tests.chaos.support import (
    CONCURRENCY,
    Chaos,
    all_finished,
    assert_invariants,
    busy,
    documents_held,
    post_documents,
)
from tests.support import eventually

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]


async def test_postgres_restart_while_the_worker_is_busy_fails_nothing(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    docs = await post_documents(tenant, 120)
    held = [d["document_id"] for d in docs[::2]]
    worker = lab.start_worker()
    async with documents_held(lab.pool, held):
        await busy(lab.pool, held)
        await asyncio.to_thread(lab.pg.restart)  # cuts every session, the lock's included

    assert await all_finished(lab.pool, tenant) == {"indexed": 120}
    assert worker.alive()
    assert "job_database_unavailable" in worker.text()  # the outage did hit jobs in flight
    assert await lab.pool.fetchval("SELECT count(*) FROM index_jobs WHERE status = 'failed'") == 0
    await assert_invariants(lab.pool)


async def test_postgres_down_longer_than_the_lease_fails_nothing(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    docs = await post_documents(tenant, 40)
    held = [d["document_id"] for d in docs]
    worker = lab.start_worker()
    async with documents_held(lab.pool, held):
        await busy(lab.pool, held)
        await asyncio.to_thread(lab.pg.stop)

    async def gave_up() -> int:
        # Jobs that could not hand themselves back within the lease, left for the reconciler.
        lines = worker.text().splitlines()
        return sum(" job_database_unavailable " in ln and "handed_back" not in ln for ln in lines)

    await eventually(
        gave_up, lambda n: n >= CONCURRENCY, timeout_s=60, what="attempts outlived by the outage"
    )
    await asyncio.to_thread(lab.pg.start)

    assert await all_finished(lab.pool, tenant) == {"indexed": 40}
    assert worker.alive()
    assert await lab.pool.fetchval("SELECT count(*) FROM index_jobs WHERE status = 'failed'") == 0
    await assert_invariants(lab.pool)


async def test_post_while_postgres_is_down_answers_503_and_writes_nothing(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    redis = create_redis(lab.settings)
    try:
        lab.pg.stop()
        response = await tenant.post("/v1/documents", {"content": "refused"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        ready = await lab.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"postgres": "down", "redis": "ok"}
        assert await redis.zcard(QUEUE_NAME) == 0
        lab.pg.start()

        accepted = await eventually(
            lambda: tenant.post("/v1/documents", {"content": "accepted"}),
            lambda r: r.status_code == 202,
            what="the API's pool reconnected",
        )
    finally:
        await redis.aclose()
    assert accepted.json()["status"] == "queued"
    contents = await lab.pool.fetch("SELECT content FROM documents WHERE tenant_id = $1", tenant.id)
    assert [r["content"] for r in contents] == ["accepted"]
    lab.start_worker()
    assert await all_finished(lab.pool, tenant) == {"indexed": 1}
    await assert_invariants(lab.pool)
