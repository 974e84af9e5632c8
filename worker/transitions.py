"""Every move of an index job, each one filtered ``UPDATE … WHERE status = …`` statement.

Each takes a connection bound to the job's tenant (shared.db.tenant_connection): row-level security
hides every other tenant's rows from it.

A move happens only from the state it expects and, once processing, only for the attempt that
claimed the job (``attempts`` is the fencing token). A duplicate or late delivery, or a worker whose
job was taken back, therefore changes nothing.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Sequence

import asyncpg

from shared.queries import Q
from shared.schemas import IndexJobPayload
from worker import pipeline


class Requeue(enum.Enum):
    REQUEUED = "requeued"
    SUPERSEDED = "superseded"  # a newer job is queued for the document; this one ended failed
    LOST = "lost"  # the job is no longer ours (taken back after an expired lease)


SUPERSEDED_NOTE = "not retried: a newer job is queued for this document and indexes its latest version"


#: What a claim gives one delivery: its attempt number and the version to index, or None.
Claimed = tuple[int, pipeline.Source] | None


async def claim_many(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, payloads: Sequence[IndexJobPayload], lease_s: float
) -> list[Claimed]:
    """queued → processing for deliveries of one tenant (no job twice), one result per payload."""
    claimed = await conn.fetch(
        Q.claim_jobs, [p.job_id for p in payloads], [p.document_id for p in payloads], tenant_id, lease_s
    )
    if not claimed:
        return [None] * len(payloads)
    # Committed already (no transaction: two round trips fewer). A job whose document is deleted
    # before the next statement goes with it (cascade) and is not read: nothing to index; one
    # re-posted in between is read at its newer version, which its own new job indexes again.
    rows = await conn.fetch(Q.claim_read_documents, [r["job_id"] for r in claimed])
    attempts = {r["job_id"]: r["attempts"] for r in claimed}
    sources = {
        r["job_id"]: pipeline.Source(
            document_id=r["document_id"],
            version=r["version"],
            title=r["title"],
            content=r["content"],
            content_type=r["content_type"],
        )
        for r in rows
    }
    return [(attempts[p.job_id], sources[p.job_id]) if p.job_id in sources else None for p in payloads]


async def claim(conn: asyncpg.Connection, payload: IndexJobPayload, lease_s: float) -> Claimed:
    return (await claim_many(conn, payload.tenant_id, [payload], lease_s))[0]


async def renew_many(
    conn: asyncpg.Connection, attempts: Sequence[tuple[uuid.UUID, int]], lease_s: float
) -> set[uuid.UUID]:
    """Extends the leases of running attempts of one tenant; returns the jobs still ours."""
    rows = await conn.fetch(Q.renew_leases, [j for j, _ in attempts], [a for _, a in attempts], lease_s)
    return {r["job_id"] for r in rows}


async def renew(conn: asyncpg.Connection, job_id: uuid.UUID, attempt: int, lease_s: float) -> bool:
    return job_id in await renew_many(conn, [(job_id, attempt)], lease_s)


#: A finished attempt to complete: job, attempt, what to index.
Done = tuple[uuid.UUID, int, pipeline.IndexEntry]

#: complete_many's answer for a job whose document another transaction holds: complete it alone.
BUSY = None


async def complete_many(conn: asyncpg.Connection, done: Sequence[Done]) -> list[bool | None]:
    """processing → indexed for attempts of one tenant (no document twice), each with its
    document's index, in one statement (complete_jobs). False for a job no longer its attempt's,
    for which nothing was written; BUSY for one whose document was locked by another transaction
    (skipped, not waited for)."""
    results: dict[uuid.UUID, bool | None] = {}
    for config in {entry.config for _, _, entry in done}:  # one in practice: SEARCHHUB_SEARCH_CONFIG
        group = [d for d in done if d[2].config == config]
        rows = await conn.fetch(
            Q.complete_jobs,
            [j for j, _, _ in group],
            [a for _, a, _ in group],
            [e.document_id for _, _, e in group],
            [e.version for _, _, e in group],
            config,
            *pipeline.passage_arrays([e for _, _, e in group]),
        )
        results.update({r["job_id"]: BUSY if r["busy"] else r["completed"] for r in rows})
    return [results[job_id] for job_id, _, _ in done]


async def complete(
    conn: asyncpg.Connection, job_id: uuid.UUID, attempt: int, entry: pipeline.IndexEntry
) -> bool:
    """One attempt, waiting for its document's lock if another transaction holds it."""
    async with conn.transaction():
        await conn.execute(Q.lock_document, entry.document_id)
        (completed,) = await complete_many(conn, [(job_id, attempt, entry)])
    return bool(completed)


async def fail(conn: asyncpg.Connection, job_id: uuid.UUID, attempt: int, error: str) -> bool:
    """processing → failed, for good."""
    return await conn.fetchval(Q.fail_job, job_id, attempt, error) is not None


async def requeue(
    conn: asyncpg.Connection, job_id: uuid.UUID, attempt: int, error: str | None, *, give_back: bool
) -> Requeue:
    """processing → queued, for a retry (``give_back=False``: the attempt counts) or a hand-back by
    a stopping worker (the attempt does not count)."""
    try:
        if await conn.fetchval(Q.requeue_job, job_id, attempt, error, int(give_back)) is not None:
            return Requeue.REQUEUED
    except asyncpg.UniqueViolationError:
        pass  # a newer job was queued for the document between our check and our write
    # Either a newer job is queued for the document (one queued job per document), or the job is
    # not ours any more. Only in the first case is it still ours to end.
    note = f"{error}; {SUPERSEDED_NOTE}" if error else SUPERSEDED_NOTE
    if await fail(conn, job_id, attempt, note):
        return Requeue.SUPERSEDED
    return Requeue.LOST
