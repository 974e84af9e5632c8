"""``searchhub worker``: one arq worker process that survives Redis and PostgreSQL outages.

arq's own loop ends when Redis drops the connection; this supervisor reports the outage once,
waits with backoff, and starts the loop again. Beside it, the reconciler runs every
SEARCHHUB_RECONCILE_INTERVAL_S (one pass at a time across all workers, worker/reconciler.py); it is
not an arq cron job because those tick in whole seconds and stop with arq's loop during an outage.
SIGTERM stops picking jobs, lets running ones finish for SEARCHHUB_WORKER_SHUTDOWN_GRACE_S, hands
the rest back, and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from arq.worker import Worker
from loguru import logger
from prometheus_client import start_http_server

from shared.db import create_pool
from shared.queue import REDIS_UNAVAILABLE_ERRORS, create_redis
from shared.settings import Settings
from worker.context import WorkerContext
from worker.metrics import QUEUE_DEPTH
from worker.reconciler import reconcile_forever
from worker.settings import build_worker

MAX_BACKOFF_S = 10.0
QUEUE_DEPTH_INTERVAL_S = 5.0


async def _stop_gracefully(worker: Worker, run: asyncio.Task[None], grace_s: float) -> None:
    worker.allow_pick_jobs = False
    running = [t for t in worker.tasks.values() if not t.done()]
    if running:
        logger.info("worker_draining", jobs=len(running), grace_s=grace_s)
        await asyncio.wait(running, timeout=grace_s)
    # What still runs is cancelled: each job hands itself back to the queue (jobs.py), and arq
    # leaves its delivery in Redis for another worker.
    await _cancel_until_done([*worker.tasks.values(), run])
    with contextlib.suppress(*REDIS_UNAVAILABLE_ERRORS):
        await worker.pool.delete(worker.health_check_key)
    with contextlib.suppress(Exception):
        await worker.pool.aclose()


async def _cancel_until_done(tasks: list[asyncio.Task[None]], every_s: float = 2.0) -> None:
    """Cancels the tasks, again and again until each has ended. A cancellation can get lost
    inside arq's loop (seen in the tests: after one cancel() it polled on for good, and the stop
    hung), so one cancel() is not enough to be sure it ends."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=every_s)


async def _watch_queue_depth(worker_holder: list[Worker]) -> None:
    while True:
        await asyncio.sleep(QUEUE_DEPTH_INTERVAL_S)
        with contextlib.suppress(*REDIS_UNAVAILABLE_ERRORS):
            if worker_holder:
                QUEUE_DEPTH.set(await worker_holder[-1].pool.zcard(worker_holder[-1].queue_name))


async def serve(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, addr=settings.host)

    pool = await create_pool(settings)
    lease_pool = await create_pool(settings, max_size=1)
    app = WorkerContext(settings=settings, pool=pool, lease_pool=lease_pool)
    holder: list[Worker] = []
    depth = asyncio.create_task(_watch_queue_depth(holder))
    reconciler_redis = create_redis(settings, timeout_s=5.0)
    # The reconciler works across tenants, so it acts as the schema owner, outside row-level
    # security; one connection is all a pass uses.
    owner_pool = await create_pool(settings, max_size=1, restricted=False)
    reconciler = asyncio.create_task(reconcile_forever(owner_pool, reconciler_redis, settings))
    stopping = asyncio.create_task(stop.wait())
    backoff = 0.5
    outage = False
    logger.info("worker_started", concurrency=settings.worker_concurrency)
    try:
        while not stop.is_set():
            worker = build_worker(settings, app, create_redis(settings, timeout_s=5.0))
            holder[:] = [worker]
            run = asyncio.create_task(worker.async_run())
            await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if stop.is_set():
                await _stop_gracefully(worker, run, settings.worker_shutdown_grace_s)
                break
            exc = run.exception()
            with contextlib.suppress(Exception):
                await worker.pool.aclose()
            if exc is None or not isinstance(exc, REDIS_UNAVAILABLE_ERRORS):
                raise exc or RuntimeError("arq worker loop ended unexpectedly")
            if not outage:
                logger.warning("redis_unavailable", error=repr(exc), retrying_in_s=backoff)
                outage = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            # A fresh loop that survives its first poll means Redis is back.
            if outage:
                outage = await _still_down(settings)
                if not outage:
                    logger.info("redis_reconnected")
                    backoff = 0.5
    finally:
        for task in (depth, stopping, reconciler):
            task.cancel()
        await asyncio.wait([depth, stopping, reconciler])
        with contextlib.suppress(Exception):
            await reconciler_redis.aclose()
        await app.close()
        await owner_pool.close()
        await lease_pool.close()
        await pool.close()
        logger.info("worker_stopped")


async def _still_down(settings: Settings) -> bool:
    redis = create_redis(settings, timeout_s=2.0)
    try:
        await redis.ping()
        return False
    except REDIS_UNAVAILABLE_ERRORS:
        return True
    finally:
        with contextlib.suppress(Exception):
            await redis.aclose()
