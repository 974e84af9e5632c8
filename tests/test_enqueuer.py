"""The API's background enqueuer: bounded, batched, flushed on shutdown, never fatal."""

from __future__ import annotations

import uuid

from arq.connections import ArqRedis

from api.enqueuer import Enqueuer
from shared.constants import QUEUE_NAME
from shared.queue import create_redis
from shared.schemas import IndexJobPayload
from shared.settings import Settings
from tests.support import eventually


def payload() -> IndexJobPayload:
    return IndexJobPayload(tenant_id=uuid.uuid4(), document_id=uuid.uuid4(), job_id=uuid.uuid4())


async def test_close_sends_what_is_buffered_and_later_submits_are_refused(redis: ArqRedis) -> None:
    enqueuer = Enqueuer(redis, max_pending=1000, max_batch=7, timeout_s=2.0)
    enqueuer.start()
    jobs = [payload() for _ in range(50)]
    assert all(enqueuer.submit(j) for j in jobs)

    await enqueuer.close(5.0)

    assert await redis.zcard(QUEUE_NAME) == 50
    assert not enqueuer.submit(payload())


async def test_the_buffer_is_bounded(redis: ArqRedis) -> None:
    enqueuer = Enqueuer(redis, max_pending=3, max_batch=10, timeout_s=2.0)
    assert not enqueuer.submit(payload())  # not started: nothing would ever send it
    enqueuer.start()
    results = [enqueuer.submit(payload()) for _ in range(5)]
    assert results == [True, True, True, False, False]
    await enqueuer.close(5.0)
    assert await redis.zcard(QUEUE_NAME) == 3


async def test_redis_away_drops_the_batch_and_the_enqueuer_goes_on(redis: ArqRedis) -> None:
    # A client on a port where nothing listens: every send fails fast.
    dead = create_redis(Settings(redis_url="redis://127.0.0.1:1/0"), timeout_s=0.2)
    enqueuer = Enqueuer(dead, max_pending=100, max_batch=10, timeout_s=0.2)
    enqueuer.start()
    assert enqueuer.submit(payload())
    await eventually(lambda: _pending(enqueuer), lambda n: n == 0, what="batch attempted")
    assert enqueuer.submit(payload())  # still accepting: the rows are the reconciler's to re-drive
    await enqueuer.close(1.0)
    await dead.aclose()


async def _pending(enqueuer: Enqueuer) -> int:
    return enqueuer.pending
