"""Redis stopped, hung or emptied while documents are posted and processed."""

from __future__ import annotations

import signal

import pytest

from shared.constants import QUEUE_NAME
from shared.queue import create_redis
from tests.chaos.support import (
    Chaos,
    all_finished,
    assert_invariants,
    busy,
    documents_held,
    post_documents,
    statuses,
)
from tests.support import eventually

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]


async def test_documents_posted_while_redis_is_down_are_indexed_once_it_is_back(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    worker = lab.start_worker()
    first = (await post_documents(tenant, 1, "before"))[0]
    await eventually(lambda: tenant.job(first["job_id"]), lambda j: j["status"] == "indexed", timeout_s=60)

    lab.redis.stop()
    ready = await lab.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "checks": {"postgres": "ok", "redis": "down"}}
    docs = await post_documents(tenant, 40, "during")  # each answered 202
    assert (await statuses(lab.pool, tenant)).get("queued") == 40
    lab.redis.start()  # empty: nothing of the 40 ever reached it

    assert await all_finished(lab.pool, tenant) == {"indexed": 41}
    assert (await lab.client.get("/readyz")).status_code == 200
    assert worker.alive()
    log = worker.text()
    assert log.count("redis_unavailable") == 1, log[-3000:]
    assert "redis_reconnected" in log
    redis = create_redis(lab.settings)
    try:
        worker.kill()  # so that the job stays in Redis for us to see the API's own enqueue
        after = await post_documents(tenant, 1, "after")
        # Enqueued by the API itself (its background enqueuer, just after the 202): its Redis client
        # reconnected on its own.
        await eventually(
            lambda: redis.exists(f"arq:job:{after[0]['job_id']}"), bool, timeout_s=10, what="API enqueue"
        )
    finally:
        await redis.aclose()
    lab.start_worker()
    await eventually(lambda: tenant.job(after[0]["job_id"]), lambda j: j["status"] == "indexed", timeout_s=60)
    assert len(docs) == 40
    await assert_invariants(lab.pool)


async def test_post_while_redis_hangs_is_answered_202_and_delivered_later(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    assert lab.redis.process is not None
    lab.redis.process.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        docs = await post_documents(tenant, 5, "hung")  # the enqueue gives up; the rows stay
        ready = await lab.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"] == "down"
    finally:
        lab.redis.process.send_signal(signal.SIGCONT)
    lab.start_worker()

    assert await all_finished(lab.pool, tenant) == {"indexed": len(docs)}
    await assert_invariants(lab.pool)


async def test_flushall_with_jobs_outstanding_loses_nothing(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    docs = await post_documents(tenant, 120)
    held = [d["document_id"] for d in docs[::2]]
    redis = create_redis(lab.settings)
    try:
        async with documents_held(lab.pool, held):
            lab.start_worker()
            await busy(lab.pool, held)
            assert await redis.zcard(QUEUE_NAME) > 0
            await redis.flushall()
    finally:
        await redis.aclose()

    assert await all_finished(lab.pool, tenant) == {"indexed": 120}
    await assert_invariants(lab.pool)
