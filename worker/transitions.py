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

import asyncpg

from shared.queries import Q
from shared.schemas import IndexJobPayload
from worker import pipeline


class Requeue(enum.Enum):
    REQUEUED = "requeued"
    SUPERSEDED = "superseded"  # a newer job is queued for the document; this one ended failed
    LOST = "lost"  # the job is no longer ours (taken back after an expired lease)


SUPERSEDED_NOTE = "not retried: a newer job is queued for this document and indexes its latest version"


async def claim(
    conn: asyncpg.Connection, payload: IndexJobPayload, lease_s: float
) -> tuple[int, pipeline.Source] | None:
    """queued → processing. Returns this attempt's number and the version to index, or None."""
    async with conn.transaction():
        attempts = await conn.fetchval(
            Q.claim_job, payload.job_id, payload.tenant_id, payload.document_id, lease_s
        )
        if attempts is None:
            return None
        # The row lock taken just now keeps the job (and, by its foreign key, the document) in place.
        row = await conn.fetchrow(Q.claim_read_document, payload.job_id, payload.document_id)
        assert row is not None
    source = pipeline.Source(
        document_id=payload.document_id,
        version=row["version"],
        title=row["title"],
        content=row["content"],
        content_type=row["content_type"],
    )
    return attempts, source


async def renew(conn: asyncpg.Connection, job_id: uuid.UUID, attempt: int, lease_s: float) -> bool:
    return await conn.fetchval(Q.renew_lease, job_id, attempt, lease_s) is not None


async def complete(
    conn: asyncpg.Connection, job_id: uuid.UUID, attempt: int, entry: pipeline.IndexEntry
) -> bool:
    """processing → indexed, with the index written in the same transaction. False: the job is no
    longer ours, and nothing was written."""
    async with conn.transaction():
        row = await conn.fetchrow(Q.complete_job, job_id, attempt)
        if row is None or not row["completed"]:
            return False  # the statement changed nothing, so there is nothing to undo
        if row["advanced"]:
            await pipeline.upsert(conn, entry)
        # else a newer version is indexed already (or the document is gone): this job is done,
        # and its older text must not replace the newer one.
        return True


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
