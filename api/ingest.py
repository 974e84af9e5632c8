"""Accepting work: the durable rows first (the promise), the enqueue after (the delivery).

If the process dies between the two, or Redis is away, the committed ``queued`` row is still the
truth and the reconciler delivers it; the client's 202 stays true either way.
"""

from __future__ import annotations

import hashlib
import uuid

import asyncpg
import msgspec
from loguru import logger

from api.context import AppContext
from api.errors import Conflict
from api.metrics import ENQUEUE_FAILURES
from shared.queries import Q
from shared.queue import enqueue_bounded
from shared.schemas import Accepted, DocumentIn, IndexJobPayload
from shared.settings import Settings

_encode = msgspec.json.Encoder().encode


def accepted(document_id: uuid.UUID, job_id: uuid.UUID) -> Accepted:
    return Accepted(
        document_id=document_id, job_id=job_id, status="queued", status_url=f"/v1/index-jobs/{job_id}"
    )


def request_hash(route: str, body: object) -> bytes:
    # Hash the decoded request, not its bytes: the same document re-sent with other whitespace is
    # the same request.
    return hashlib.sha256(route.encode() + b"\n" + _encode(body)).digest()


async def _ingest(conn: asyncpg.Connection, tenant_id: uuid.UUID, doc: DocumentIn) -> Accepted:
    row = await conn.fetchrow(
        Q.ingest_document,
        uuid.uuid4(),
        tenant_id,
        doc.external_id,
        doc.title,
        doc.content,
        doc.content_type,
        doc.metadata,
        uuid.uuid4(),
    )
    assert row is not None
    return accepted(row["document_id"], row["job_id"])


async def enqueue(ctx: AppContext, tenant_id: uuid.UUID, answer: Accepted) -> None:
    payload = IndexJobPayload(tenant_id=tenant_id, document_id=answer.document_id, job_id=answer.job_id)
    if await enqueue_bounded(ctx.redis, payload, ctx.settings.enqueue_timeout_s) is None:
        # The row is committed; the reconciler re-drives it once Redis answers again.
        ENQUEUE_FAILURES.inc()
        logger.warning("enqueue_failed", tenant_id=str(tenant_id), job_id=str(answer.job_id))


async def accept_document(
    conn: asyncpg.Connection,
    settings: Settings,
    tenant_id: uuid.UUID,
    doc: DocumentIn,
    idempotency_key: str | None,
) -> Accepted:
    """Writes the document and its job (or replays the first answer to a repeated key); the caller
    enqueues after this returns, that is after the commit."""
    if idempotency_key is None:
        return await _ingest(conn, tenant_id, doc)
    digest = request_hash("POST /v1/documents", doc)
    async with conn.transaction():
        replay = await _claim_or_replay(conn, tenant_id, idempotency_key, digest, settings.idempotency_ttl_s)
        if replay is not None:
            return replay
        answer = await _ingest(conn, tenant_id, doc)
        await conn.execute(
            Q.save_idempotency_response, tenant_id, idempotency_key, msgspec.to_builtins(answer)
        )
    return answer


async def _claim_or_replay(
    conn: asyncpg.Connection, tenant_id: uuid.UUID, key: str, digest: bytes, ttl_s: float
) -> Accepted | None:
    """None: the key is ours, go on. Else the first answer to this key, which must be for the same
    request: a key reused with another body is a client bug, answered 409."""
    if await conn.fetchval(Q.claim_idempotency_key, tenant_id, key, digest, float(ttl_s)):
        return None
    row = await conn.fetchrow(Q.get_idempotency_key, tenant_id, key)
    assert row is not None
    if row["request_hash"] != digest:
        raise Conflict("this Idempotency-Key was already used with a different request body")
    return msgspec.convert(row["response"], Accepted)
