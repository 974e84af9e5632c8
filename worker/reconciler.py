"""The reconciler: makes Redis agree with PostgreSQL again, so nothing accepted is ever lost.

PostgreSQL is the truth and Redis only the delivery rail, so every fault between them ends as a
row that says ``queued`` with no delivery on its way, or ``processing`` with nobody working on it.
One pass:

1. takes back ``processing`` jobs whose lease expired (their worker was killed or cut off): back to
   ``queued`` with the lost attempt counted, or ``failed`` when that was the last attempt, or when a
   newer job is queued for the document already (it indexes the latest version);
2. makes sure each such job, and every ``queued`` job untouched for
   ``SEARCHHUB_RECONCILE_QUEUED_GRACE_S``, is deliverable in Redis now: enqueued under its own id
   when arq does not hold it (a crash between commit and enqueue, a failed enqueue, a flushed or
   restarted Redis); released when a dead worker's in-progress marker would hide it from every
   other worker until arq's own expiry (minutes).

Enqueues use the job id as arq's ``_job_id``, so a second pass, or one beside the API's own enqueue,
adds no delivery. Passes are exclusive across processes (a PostgreSQL advisory lock); the workers
run one every ``SEARCHHUB_RECONCILE_INTERVAL_S`` and ``searchhub reconcile`` runs one by hand.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.utils import timestamp_ms
from loguru import logger

from shared.constants import QUEUE_NAME, RECONCILER_LOCK_KEY
from shared.db import is_unavailable
from shared.queries import Q
from shared.queue import REDIS_UNAVAILABLE_ERRORS, enqueue_index_job
from shared.schemas import IndexJobPayload
from shared.settings import Settings
from worker.settings import in_progress_timeout_s
from worker.transitions import SUPERSEDED_NOTE

#: Rows per statement and per Redis pipeline; a pass goes on page by page until none are left.
PAGE = 500


#: Expired Idempotency-Key records deleted per pass at most.
PURGE_BATCH = 10_000


@dataclass
class Summary:
    """What one pass did (or, in a dry run, would do)."""

    dry_run: bool = False
    requeued: int = 0  # processing with an expired lease -> queued
    failed: int = 0  # processing with an expired lease on its last attempt -> failed
    superseded: int = 0  # processing with an expired lease, a newer job queued -> failed
    checked: int = 0  # queued jobs looked up in Redis
    enqueued: int = 0  # queued jobs arq did not hold, enqueued
    released: int = 0  # deliveries of dead workers freed for another worker
    rescheduled: int = 0  # deliveries held by arq but not due now, made due
    expired_keys: int = 0  # Idempotency-Key records past SEARCHHUB_IDEMPOTENCY_TTL_S, deleted
    requeued_ids: list[uuid.UUID] = field(default_factory=list, repr=False)

    @property
    def changed(self) -> bool:
        return any(
            (
                self.requeued,
                self.failed,
                self.superseded,
                self.enqueued,
                self.released,
                self.rescheduled,
                self.expired_keys,
            )
        )

    def fields(self) -> dict[str, int]:
        return {
            "requeued": self.requeued,
            "failed": self.failed,
            "superseded": self.superseded,
            "checked": self.checked,
            "enqueued": self.enqueued,
            "released": self.released,
            "rescheduled": self.rescheduled,
            "expired_keys": self.expired_keys,
        }

    def describe(self) -> str:
        would = "would be " if self.dry_run else ""
        parts = [
            f"expired leases: {self.requeued} {would}requeued, {self.failed} {would}failed "
            f"(attempts used up), {self.superseded} {would}failed (superseded)",
            f"queued jobs checked in Redis: {self.checked}; {self.enqueued} {would}enqueued, "
            f"{self.released} {would}released from dead workers, {self.rescheduled} {would}made due now",
        ]
        if not self.dry_run:
            parts.append(f"expired idempotency keys deleted: {self.expired_keys}")
        prefix = "dry run, nothing changed: " if self.dry_run else ""
        return prefix + "; ".join(parts)


def _lost_note(attempt: int, max_attempts: int) -> str:
    note = f"attempt {attempt} of {max_attempts} was lost: its worker stopped renewing the lease"
    return note if attempt < max_attempts else f"{note}; no attempts left"


async def _reclaim(
    conn: asyncpg.Connection, settings: Settings, summary: Summary
) -> tuple[int, list[asyncpg.Record]]:
    """Step 1, one page in one transaction. Returns how many jobs it looked at, and those it
    queued again."""
    requeued: list[asyncpg.Record] = []
    max_attempts = settings.job_max_attempts
    async with conn.transaction():
        rows = await conn.fetch(Q.lock_expired_leases, PAGE)
        for row in rows:
            job_id, attempt = row["id"], row["attempts"]
            note = _lost_note(attempt, max_attempts)
            if attempt < max_attempts:
                try:
                    async with conn.transaction():
                        moved = await conn.fetchval(Q.reclaim_job, job_id, attempt, note)
                except asyncpg.UniqueViolationError:
                    moved = None  # a re-post queued a newer job for the document just now
                if moved is not None:
                    requeued.append(row)
                    summary.requeued += 1
                    continue
                if await conn.fetchval(Q.fail_lost_job, job_id, attempt, f"{note}; {SUPERSEDED_NOTE}"):
                    summary.superseded += 1
            elif await conn.fetchval(Q.fail_lost_job, job_id, attempt, note):
                summary.failed += 1
    return len(rows), requeued


def _dead_delivery(settings: Settings, in_progress_ttl_ms: int, *, reclaimed: bool) -> bool:
    """Whether an in-progress marker belongs to a delivery no live worker is running.

    The job's row is queued, so its delivery has not claimed it: either it is just starting (a few
    milliseconds), or the worker that started it died. The marker's age (from its remaining TTL)
    tells the two apart; a job whose lease was just taken back has a dead delivery by definition."""
    if in_progress_ttl_ms < 0:
        return False  # no marker (-2), or one without expiry (-1) that arq never writes
    if reclaimed:
        return True
    age_ms = in_progress_timeout_s(settings) * 1000 - in_progress_ttl_ms
    return age_ms > settings.reconcile_queued_grace_s * 1000


async def _deliver(
    redis: ArqRedis,
    settings: Settings,
    rows: list[asyncpg.Record],
    summary: Summary,
    *,
    reclaimed: bool,
    dry_run: bool,
) -> None:
    """Step 2 for one page of queued jobs: make each deliverable now, without a second delivery."""
    if not rows:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for row in rows:
            job_id = str(row["id"])
            pipe.exists(job_key_prefix + job_id)
            pipe.pttl(in_progress_key_prefix + job_id)
            pipe.zscore(QUEUE_NAME, job_id)
        found = await pipe.execute()
    summary.checked += len(rows)
    now = timestamp_ms()
    for index, row in enumerate(rows):
        job_id = str(row["id"])
        held, in_progress_ttl_ms, score = found[3 * index : 3 * index + 3]
        dead = in_progress_ttl_ms >= 0
        if dead and not _dead_delivery(settings, in_progress_ttl_ms, reclaimed=reclaimed):
            continue  # a worker is starting this delivery right now
        if dead:
            # The row is queued, so no live worker owns this delivery: the worker that started it
            # died (or its attempt was just taken back). Free it for the next poll of any worker,
            # now rather than when arq's marker expires.
            if not dry_run:
                async with redis.pipeline(transaction=True) as pipe:
                    pipe.delete(in_progress_key_prefix + job_id)
                    if held:
                        pipe.zadd(QUEUE_NAME, {job_id: now}, lt=True)
                    await pipe.execute()
            summary.released += 1
        if not held:
            # arq holds nothing for it: enqueue it under its own id (a no-op if someone just did).
            payload = IndexJobPayload(
                tenant_id=row["tenant_id"], document_id=row["document_id"], job_id=row["id"]
            )
            if dry_run or await enqueue_index_job(redis, payload):
                summary.enqueued += 1
        elif not dead and (score is None or (reclaimed and score > now)):
            # Held but not in the queue (half-lost), or deferred by an attempt that was taken back.
            if not dry_run:
                await redis.zadd(QUEUE_NAME, {job_id: now}, lt=True)
            summary.rescheduled += 1


async def _deliver_queued(
    conn: asyncpg.Connection, redis: ArqRedis, settings: Settings, summary: Summary, *, dry_run: bool
) -> None:
    after: tuple[datetime, uuid.UUID] | tuple[None, None] = (None, None)
    while True:
        rows = await conn.fetch(Q.queued_jobs_to_check, settings.reconcile_queued_grace_s, *after, PAGE)
        await _deliver(redis, settings, rows, summary, reclaimed=False, dry_run=dry_run)
        if len(rows) < PAGE:
            return
        after = (rows[-1]["updated_at"], rows[-1]["id"])


async def _dry_run(conn: asyncpg.Connection, redis: ArqRedis, settings: Settings) -> Summary:
    summary = Summary(dry_run=True)
    counts = await conn.fetchrow(Q.count_expired_leases, settings.job_max_attempts)
    assert counts is not None
    summary.requeued, summary.failed = counts["to_requeue"], counts["to_fail"]
    await _deliver_queued(conn, redis, settings, summary, dry_run=True)
    return summary


async def reconcile_once(
    pool: asyncpg.Pool, redis: ArqRedis, settings: Settings, *, dry_run: bool = False
) -> Summary | None:
    """One pass. None: another reconciler holds the lock, and this one did nothing.

    A dry run takes no lock and writes nothing anywhere; it counts what a pass would do now."""
    async with pool.acquire() as conn:
        if dry_run:
            return await _dry_run(conn, redis, settings)
        if not await conn.fetchval(Q.reconciler_try_lock, RECONCILER_LOCK_KEY):
            return None
        try:
            summary = Summary()
            while True:
                seen, requeued = await _reclaim(conn, settings, summary)
                # Committed first: a worker that gets the delivery must find the row queued.
                await _deliver(redis, settings, requeued, summary, reclaimed=True, dry_run=False)
                if seen < PAGE:
                    break
            await _deliver_queued(conn, redis, settings, summary, dry_run=False)
            status = await conn.execute(
                Q.purge_idempotency_keys, float(settings.idempotency_ttl_s), PURGE_BATCH
            )
            summary.expired_keys = int(status.rpartition(" ")[2])
            return summary
        finally:
            # The pool's reset of the connection unlocks too; a broken connection unlocks with it.
            with contextlib.suppress(Exception):
                await conn.fetchval(Q.reconciler_unlock, RECONCILER_LOCK_KEY)


def log_summary(summary: Summary | None) -> None:
    if summary is not None and summary.changed:
        logger.info("reconciled", **summary.fields())


async def reconcile_forever(pool: asyncpg.Pool, redis: ArqRedis, settings: Settings) -> None:
    """Every SEARCHHUB_RECONCILE_INTERVAL_S, one pass, in each worker (the lock lets one run).

    Outages are the reason this exists, so it never stops for one: a pass that cannot reach
    PostgreSQL or Redis is tried again at the next tick (the worker reports outages already)."""
    while True:
        await asyncio.sleep(settings.reconcile_interval_s)
        try:
            log_summary(await reconcile_once(pool, redis, settings))
        except Exception as exc:
            if is_unavailable(exc) or isinstance(exc, REDIS_UNAVAILABLE_ERRORS):
                logger.debug("reconcile_deferred_store_unavailable", error=repr(exc))
            else:
                logger.opt(exception=exc).error("reconcile_failed")
