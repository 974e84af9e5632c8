"""GroupStartWorker runs a job as arq's run_job does: one try counted per start, retries after their
defer, a job past its tries or without data dropped unrun, a failed job finished, a cancelled one
left queued for the next worker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq import Retry, func
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

from shared.queue import deserialize, serialize
from tests.support import eventually
from worker.arq_worker import GroupStartWorker
from worker.main import _stop_gracefully

QUEUE = "searchhub:test-group-start"
MAX_TRIES = 4


class Calls:
    def __init__(self) -> None:
        self.tries: dict[str, list[int]] = {}
        self.release = asyncio.Event()

    def record(self, ctx: dict[str, Any]) -> None:
        self.tries.setdefault(ctx["job_id"], []).append(ctx["job_try"])


def _functions(calls: Calls) -> list[Any]:
    async def retried_twice(ctx: dict[str, Any]) -> None:
        calls.record(ctx)
        if ctx["job_try"] < 3:
            raise Retry(defer=0.05)

    async def fails(ctx: dict[str, Any]) -> None:
        calls.record(ctx)
        raise RuntimeError("broken")

    async def too_slow(ctx: dict[str, Any]) -> None:
        calls.record(ctx)
        await asyncio.Event().wait()

    async def waits(ctx: dict[str, Any]) -> None:
        calls.record(ctx)
        await calls.release.wait()

    return [
        func(retried_twice, name="retried_twice", max_tries=MAX_TRIES),
        func(fails, name="fails", max_tries=MAX_TRIES),
        func(too_slow, name="too_slow", max_tries=MAX_TRIES, timeout=0.2),
        func(waits, name="waits", max_tries=MAX_TRIES),
    ]


class Workers:
    """Starts GroupStartWorkers on the test Redis; stops them as ``searchhub worker`` does."""

    def __init__(self, redis: ArqRedis) -> None:
        self.redis = redis
        self.calls = Calls()
        self.running: dict[GroupStartWorker, asyncio.Task[None]] = {}

    def start(self) -> GroupStartWorker:
        w = GroupStartWorker(
            functions=_functions(self.calls), redis_pool=self.redis, queue_name=QUEUE, poll_delay=0.02,
            keep_result=0, handle_signals=False, max_jobs=8,
            job_serializer=serialize, job_deserializer=deserialize,
        )  # fmt: skip
        self.running[w] = asyncio.create_task(w.async_run())
        return w

    async def stop(self, w: GroupStartWorker, grace_s: float = 1.0) -> None:
        await _stop_gracefully(w, self.running.pop(w), grace_s=grace_s)


@pytest.fixture
async def workers(redis: ArqRedis) -> AsyncIterator[Workers]:
    ws = Workers(redis)
    yield ws
    ws.calls.release.set()
    for w in list(ws.running):
        await ws.stop(w)


async def _enqueue(redis: ArqRedis, function: str) -> str:
    job_id = uuid.uuid4().hex
    assert await redis.enqueue_job(function, _job_id=job_id, _queue_name=QUEUE) is not None
    return job_id


async def _gone(redis: ArqRedis, job_id: str) -> None:
    """Finished: out of the queue, and none of its keys left."""
    await eventually(lambda: redis.zscore(QUEUE, job_id), lambda s: s is None, what="job out of the queue")
    keys = [prefix + job_id for prefix in (job_key_prefix, retry_key_prefix, in_progress_key_prefix)]
    assert await redis.exists(*keys) == 0


async def test_each_start_counts_one_try_and_a_retry_runs_again_after_its_defer(
    workers: Workers, redis: ArqRedis
) -> None:
    calls = workers.calls
    worker = workers.start()
    job_id = await _enqueue(redis, "retried_twice")

    await _gone(redis, job_id)
    assert calls.tries[job_id] == [1, 2, 3]
    assert (worker.jobs_retried, worker.jobs_complete, worker.jobs_failed) == (2, 1, 0)


async def test_a_job_past_its_tries_or_without_its_data_leaves_the_queue_unrun(
    workers: Workers, redis: ArqRedis
) -> None:
    calls = workers.calls
    spent = await _enqueue(redis, "retried_twice")
    await redis.set(retry_key_prefix + spent, MAX_TRIES)  # this start is one too many
    expired = uuid.uuid4().hex
    await redis.zadd(QUEUE, {expired: 0})  # queued, but its job key has expired
    unknown = await _enqueue(redis, "no_such_function")
    worker = workers.start()

    for job_id in (spent, expired, unknown):
        await _gone(redis, job_id)
    assert calls.tries == {}
    assert worker.jobs_failed == 3


async def test_a_job_that_raises_or_times_out_is_finished_as_failed(
    workers: Workers, redis: ArqRedis
) -> None:
    calls = workers.calls
    worker = workers.start()
    failing, slow = await _enqueue(redis, "fails"), await _enqueue(redis, "too_slow")

    await _gone(redis, failing)
    await _gone(redis, slow)
    assert calls.tries == {failing: [1], slow: [1]}
    assert worker.jobs_failed == 2


async def test_a_job_cancelled_by_a_stopping_worker_stays_queued_for_the_next(
    workers: Workers, redis: ArqRedis
) -> None:
    calls = workers.calls
    first = workers.start()
    job_id = await _enqueue(redis, "waits")
    await eventually(lambda: asyncio.sleep(0, calls.tries.get(job_id)), bool, what="job started")

    await workers.stop(first, grace_s=0)

    assert await redis.zscore(QUEUE, job_id) is not None
    assert await redis.exists(in_progress_key_prefix + job_id) == 0
    calls.release.set()
    workers.start()
    await _gone(redis, job_id)
    assert calls.tries[job_id] == [1, 2]


def test_refuses_what_it_does_not_run(redis: ArqRedis) -> None:
    with pytest.raises(ValueError, match="keep_result"):
        GroupStartWorker(functions=_functions(Calls()), redis_pool=redis, keep_result=60)
