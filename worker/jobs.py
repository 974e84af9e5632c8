"""The arq job function: one delivery of one index job, from claim to its final state.

arq delivers at least once and counts every start as a try, so the job's real state lives in
PostgreSQL: each delivery claims the job with a filtered UPDATE, does the work, and ends it with
another; deliveries that arrive together share those statements (worker/context.py). The end of
every attempt is logged and counted in exactly one place, ``outcomes.record``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
from arq import Retry
from loguru import logger

from shared.db import is_unavailable, tenant_connection
from shared.schemas import IndexJobPayload
from worker import pipeline, transitions
from worker.context import CTX_KEY, WorkerContext
from worker.outcomes import DB_AWAY, FAILED, INDEXED, LOST, RETRY, SUPERSEDED, describe, hand_back, record


class JobTimedOut(Exception):
    """An attempt's work ran past SEARCHHUB_JOB_TIMEOUT_S."""


def backoff_s(base_s: float, attempt: int) -> float:
    """Waits of base, 2·base, 4·base … after attempts 1, 2, 3 …"""
    return base_s * 2 ** (attempt - 1)


async def index_document(ctx: dict[str, Any], raw: Any) -> None:
    app: WorkerContext = ctx[CTX_KEY]
    try:
        payload = msgspec.convert(raw, IndexJobPayload)
    except msgspec.ValidationError as exc:
        # A payload we cannot read will never become readable: drop it, never retry it.
        logger.error("invalid_payload", arq_job_id=ctx.get("job_id"), error=str(exc))
        return
    log = logger.bind(tenant_id=str(payload.tenant_id), job_id=str(payload.job_id))
    try:
        claimed = await app.claims.submit(payload.tenant_id, payload)
    except Exception as exc:
        if not is_unavailable(exc):
            raise
        # The claim met an outage: every queued delivery does, so report it once, and back off
        # further at each try (arq counts them; the reconciler re-delivers a job arq gave up on).
        settings = app.settings
        defer = min(
            backoff_s(max(settings.retry_backoff_s, 0.5), ctx.get("job_try", 1)), settings.processing_lease_s
        )
        if app.database.begin():
            logger.warning("database_unavailable", error=describe(exc))
        log.debug("claim_deferred_database_unavailable", retry_in_s=defer)
        raise Retry(defer=defer) from exc
    if app.database.end():
        logger.info("database_reconnected")
    if claimed is None:
        log.debug("delivery_ignored", reason="not queued: duplicate, late, or document deleted")
        return
    attempt, source = claimed
    with app.leases.held(payload.tenant_id, payload.job_id, attempt):
        await _attempt(app, payload, log, attempt, source)


async def _attempt(
    app: WorkerContext, payload: IndexJobPayload, log: Any, attempt: int, source: pipeline.Source
) -> None:
    settings = app.settings
    started = time.perf_counter()
    job_id = payload.job_id
    try:
        try:
            async with asyncio.timeout(settings.job_timeout_s) as budget:
                entry = await pipeline.prepare(source, settings.search_config)
        except TimeoutError as exc:
            # Ours, not a database timeout: the attempt failed (and is retried), rather than being
            # handed back as an outage, which would retry a too-slow job forever.
            if budget.expired():
                raise JobTimedOut(f"the attempt took longer than {settings.job_timeout_s:g} s") from exc
            raise
        completed = await app.completions.submit(payload.tenant_id, (job_id, attempt, entry))
        if completed is transitions.BUSY:
            # Another transaction holds the document (a re-post, a delete): wait for it alone,
            # not holding up the group.
            async with tenant_connection(app.pool, payload.tenant_id) as conn:
                completed = await transitions.complete(conn, job_id, attempt, entry)
        if completed:
            record(log, INDEXED, started, attempt, version=source.version)
        else:
            record(log, LOST, started, attempt)
    except asyncio.CancelledError:
        # The worker is stopping: hand the job back undone, without spending an attempt.
        await asyncio.shield(hand_back(app.pool, payload, log, attempt, started))
        raise
    except Exception as exc:
        if is_unavailable(exc):
            await _hand_back_after_outage(app, payload, log, attempt, started, exc)
            return
        try:
            if isinstance(exc, pipeline.PermanentError):
                await _fail(app, payload, log, attempt, started, describe(exc))
            else:
                await _retry_or_fail(app, payload, log, attempt, started, exc)
        except Exception as again:
            # The database went away while the attempt was being ended: end it as an outage.
            if not is_unavailable(again):
                raise
            await _hand_back_after_outage(app, payload, log, attempt, started, again)


async def _fail(
    app: WorkerContext, payload: IndexJobPayload, log: Any, attempt: int, started: float, error: str
) -> None:
    async with tenant_connection(app.pool, payload.tenant_id) as conn:
        ended = await transitions.fail(conn, payload.job_id, attempt, error)
    record(log, FAILED if ended else LOST, started, attempt, error=error)


async def _retry_or_fail(
    app: WorkerContext, payload: IndexJobPayload, log: Any, attempt: int, started: float, exc: Exception
) -> None:
    error = describe(exc)
    settings = app.settings
    if attempt >= settings.job_max_attempts:
        await _fail(app, payload, log, attempt, started, error)
        return
    async with tenant_connection(app.pool, payload.tenant_id) as conn:
        result = await transitions.requeue(conn, payload.job_id, attempt, error, give_back=False)
    if result is not transitions.Requeue.REQUEUED:
        record(
            log,
            SUPERSEDED if result is transitions.Requeue.SUPERSEDED else LOST,
            started,
            attempt,
            error=error,
        )
        return
    defer = backoff_s(settings.retry_backoff_s, attempt)
    record(log, RETRY, started, attempt, error=error, retry_in_s=defer)
    raise Retry(defer=defer) from exc


async def _hand_back_after_outage(
    app: WorkerContext, payload: IndexJobPayload, log: Any, attempt: int, started: float, exc: Exception
) -> None:
    """The database went away mid-attempt. Not the job's fault, so the attempt must not count, and
    never does it fail the job: hand it back (queued, attempt returned) as soon as the database
    answers, and let arq deliver it again. If the database stays away longer than the lease, the
    reconciler takes the job back instead once it returns (and then the attempt counts)."""
    settings = app.settings
    error = describe(exc)
    deadline = time.monotonic() + settings.processing_lease_s
    delay = 0.1
    while True:
        try:
            # A fresh connection: the attempt's own went down with the database.
            async with tenant_connection(app.pool, payload.tenant_id) as conn:
                result = await transitions.requeue(conn, payload.job_id, attempt, None, give_back=True)
            break
        except Exception as again:
            if not is_unavailable(again) or time.monotonic() + delay > deadline:
                record(log, DB_AWAY, started, attempt, error=error)
                raise Retry(defer=settings.processing_lease_s) from exc
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)
    if result is transitions.Requeue.REQUEUED:
        record(log, DB_AWAY, started, attempt, error=error, handed_back=True)
        raise Retry(defer=max(settings.retry_backoff_s, 0.1)) from exc
    outcome = SUPERSEDED if result is transitions.Requeue.SUPERSEDED else LOST
    record(log, outcome, started, attempt, error=error)
