"""How an attempt ends: its outcome labels, the one place each end is logged and counted
(``record``), and the hand-back of a stopping worker's attempt, which both a running job
(worker/jobs.py) and a claim whose caller has gone (worker/context.py) end with."""

from __future__ import annotations

import time
from typing import Any

import asyncpg

from shared.db import tenant_connection
from shared.schemas import IndexJobPayload
from worker import transitions
from worker.metrics import JOB_DURATION, JOBS

#: Outcomes of an attempt: the label of searchhub_jobs_total and the log event.
INDEXED, FAILED, RETRY, SUPERSEDED, HANDED_BACK, LOST, DB_AWAY = (
    "indexed", "failed", "retry_scheduled", "superseded", "handed_back", "lease_lost", "database_unavailable",
)  # fmt: skip


def describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def record(log: Any, outcome: str, started: float, attempt: int, **fields: Any) -> None:
    elapsed = time.perf_counter() - started
    JOBS.labels(outcome).inc()
    JOB_DURATION.labels(outcome).observe(elapsed)
    level = "WARNING" if outcome in (FAILED, SUPERSEDED, LOST, DB_AWAY) else "INFO"
    log.log(level, f"job_{outcome}", attempt=attempt, duration_ms=round(elapsed * 1000, 1), **fields)


async def hand_back(
    pool: asyncpg.Pool, payload: IndexJobPayload, log: Any, attempt: int, started: float, **fields: Any
) -> None:
    """processing → queued without spending the attempt (the worker is stopping), recorded."""
    try:
        async with tenant_connection(pool, payload.tenant_id) as conn:
            result = await transitions.requeue(conn, payload.job_id, attempt, None, give_back=True)
    except Exception as exc:
        # The lease will run out and the reconciler takes the job back.
        record(log, LOST, started, attempt, error=describe(exc), **fields)
        return
    outcome = {transitions.Requeue.REQUEUED: HANDED_BACK, transitions.Requeue.SUPERSEDED: SUPERSEDED}
    record(log, outcome.get(result, LOST), started, attempt, **fields)
