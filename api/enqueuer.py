"""Enqueues off the request path: accepted jobs are buffered and sent to Redis in batches, one
script call per batch (``shared.queue.enqueue_index_jobs``) instead of arq's three round trips per
job inside every request.

Nothing waits on purpose: while one batch is in flight the next one gathers, so under light load a
job reaches Redis one round trip after its commit, and under heavy load batches grow by themselves.
The buffer is bounded; a job that cannot be buffered or sent is still a committed ``queued`` row,
which the reconciler re-drives (the row is the promise, Redis only the delivery).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib

from arq.connections import ArqRedis
from loguru import logger

from api.metrics import ENQUEUE_FAILURES
from shared.queue import enqueue_many_bounded
from shared.schemas import IndexJobPayload


class Enqueuer:
    def __init__(self, redis: ArqRedis, *, max_pending: int, max_batch: int, timeout_s: float) -> None:
        self.redis = redis
        self.max_pending = max_pending
        self.max_batch = max_batch
        self.timeout_s = timeout_s
        self._pending: collections.deque[IndexJobPayload] = collections.deque()
        self._wake = asyncio.Event()
        self._stopping = False
        self._refusing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="searchhub-enqueuer")

    @property
    def pending(self) -> int:
        return len(self._pending)

    def submit(self, payload: IndexJobPayload) -> bool:
        """Buffers one job; False (and counted) when the buffer is full or closed."""
        if self._stopping or self._task is None or len(self._pending) >= self.max_pending:
            ENQUEUE_FAILURES.inc()
            if not self._refusing:  # once per episode: an outage must not become a log flood
                self._refusing = True
                logger.warning("enqueue_buffer_full", job_id=str(payload.job_id), pending=len(self._pending))
            return False
        self._refusing = False
        self._pending.append(payload)
        self._wake.set()
        return True

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                await self._flush_once()
            if self._stopping:
                return

    async def _flush_once(self) -> None:
        count = min(len(self._pending), self.max_batch)
        batch = [self._pending.popleft() for _ in range(count)]
        try:
            result = await enqueue_many_bounded(self.redis, batch, self.timeout_s)
        except Exception as exc:  # a bug here must not stop every later enqueue
            logger.opt(exception=exc).error("enqueue_batch_error", jobs=len(batch))
            result = None
        if result is None:
            ENQUEUE_FAILURES.inc(len(batch))
            logger.warning("enqueue_failed", jobs=len(batch), first_job_id=str(batch[0].job_id))

    async def close(self, timeout_s: float) -> None:
        """Sends what is buffered (for at most ``timeout_s``), then stops."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(self._task, timeout_s)
        if self._pending:
            ENQUEUE_FAILURES.inc(len(self._pending))
            logger.warning("enqueue_dropped_at_shutdown", jobs=len(self._pending))
            self._pending.clear()
        self._task = None
