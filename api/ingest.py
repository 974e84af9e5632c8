"""Accepting work: the durable rows first (the promise), the enqueue after (the delivery).

If the process dies between the two, or Redis is away, the committed ``queued`` row is still the
truth and the reconciler delivers it; the client's 202 stays true either way.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from typing import TypeVar

import asyncpg
import msgspec
from loguru import logger

from api.context import AppContext
from api.errors import Conflict
from api.metrics import ENQUEUE_FAILURES
from api.writer import write_many, write_one
from shared.db import tenant_connection
from shared.queries import Q
from shared.queue import enqueue_many_bounded
from shared.schemas import Accepted, BatchAccepted, DocumentIn, IndexJobPayload

T = TypeVar("T")

_encode = msgspec.json.Encoder().encode

ROUTE_DOCUMENT = "POST /v1/documents"
ROUTE_BATCH = "POST /v1/documents/batch"


def accepted(document_id: uuid.UUID, job_id: uuid.UUID) -> Accepted:
    return Accepted(
        document_id=document_id, job_id=job_id, status="queued", status_url=f"/v1/index-jobs/{job_id}"
    )


def request_hash(route: str, body: object) -> bytes:
    # Hash the decoded request, not its bytes: the same document re-sent with other whitespace is
    # the same request.
    return hashlib.sha256(route.encode() + b"\n" + _encode(body)).digest()


async def _ingest(conn: asyncpg.Connection, tenant_id: uuid.UUID, doc: DocumentIn) -> Accepted:
    written = await write_one(conn, tenant_id, doc)
    return accepted(written.document_id, written.job_id)


async def _ingest_many(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, docs: Sequence[DocumentIn]
) -> list[Accepted]:
    written = await write_many(conn, [tenant_id] * len(docs), docs)
    return [accepted(w.document_id, w.job_id) for w in written]


def enqueue(ctx: AppContext, tenant_id: uuid.UUID, answer: Accepted) -> None:
    """Hands the job to the background enqueuer; the request does not wait for Redis."""
    ctx.enqueuer.submit(
        IndexJobPayload(tenant_id=tenant_id, document_id=answer.document_id, job_id=answer.job_id)
    )


async def enqueue_now(ctx: AppContext, tenant_id: uuid.UUID, answers: Sequence[Accepted]) -> None:
    """All of a batch's jobs in one round trip to Redis, before the 202."""
    payloads = [
        IndexJobPayload(tenant_id=tenant_id, document_id=a.document_id, job_id=a.job_id) for a in answers
    ]
    if await enqueue_many_bounded(ctx.redis, payloads, ctx.settings.enqueue_timeout_s) is None:
        # The rows are committed; the reconciler re-drives them once Redis answers again.
        ENQUEUE_FAILURES.inc(len(payloads))
        logger.warning("enqueue_failed", tenant_id=str(tenant_id), jobs=len(payloads))


async def accept_document(
    ctx: AppContext, tenant_id: uuid.UUID, doc: DocumentIn, idempotency_key: str | None
) -> Accepted:
    if idempotency_key is None:
        # Coalesced with concurrent posts; the writer enqueues what it commits.
        written = await ctx.writer.write(tenant_id, doc)
        return accepted(written.document_id, written.job_id)
    else:
        digest = request_hash(ROUTE_DOCUMENT, doc)
        async with tenant_connection(ctx.pool, tenant_id) as conn, conn.transaction():
            replay = await _claim_or_replay(
                conn, tenant_id, idempotency_key, digest, ctx.settings.idempotency_ttl_s, Accepted
            )
            if replay is not None:
                return replay
            answer = await _ingest(conn, tenant_id, doc)
            await conn.execute(
                Q.save_idempotency_response, tenant_id, idempotency_key, msgspec.to_builtins(answer)
            )
    enqueue(ctx, tenant_id, answer)
    return answer


async def accept_batch(
    ctx: AppContext, tenant_id: uuid.UUID, docs: Sequence[DocumentIn], idempotency_key: str | None
) -> BatchAccepted:
    """A validated batch: all rows in one transaction, all jobs in one Redis round trip. With an
    Idempotency-Key, a repeat of the same batch returns the first answer and writes nothing."""
    if idempotency_key is None:
        async with tenant_connection(ctx.pool, tenant_id) as conn:
            answer = BatchAccepted(items=await _ingest_many(conn, tenant_id, docs))
    else:
        digest = request_hash(ROUTE_BATCH, list(docs))
        async with tenant_connection(ctx.pool, tenant_id) as conn, conn.transaction():
            replay = await _claim_or_replay(
                conn, tenant_id, idempotency_key, digest, ctx.settings.idempotency_ttl_s, BatchAccepted
            )
            if replay is not None:
                return replay
            answer = BatchAccepted(items=await _ingest_many(conn, tenant_id, docs))
            await conn.execute(
                Q.save_idempotency_response, tenant_id, idempotency_key, msgspec.to_builtins(answer)
            )
    await enqueue_now(ctx, tenant_id, answer.items)
    return answer


async def _claim_or_replay(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, key: str, digest: bytes, ttl_s: float, kind: type[T]
) -> T | None:
    """None: the key is ours, go on. Else the first answer to this key, which must be for the same
    request: a key reused with another body (or on another route) is a client bug, answered 409."""
    if await conn.fetchval(Q.claim_idempotency_key, tenant_id, key, digest, float(ttl_s)):
        return None
    row = await conn.fetchrow(Q.get_idempotency_key, tenant_id, key)
    assert row is not None
    if row["request_hash"] != digest:
        raise Conflict("this Idempotency-Key was already used with a different request body")
    return msgspec.convert(row["response"], kind)
