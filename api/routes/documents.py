"""/v1/documents: accept documents (202), read and delete them."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api.auth import tenant_connection
from api.body import decode_struct, read_body, require_json
from api.context import context
from api.errors import NotFound, ValidationFailed
from api.ingest import accept_document, enqueue
from api.params import idempotency_key, path_id
from api.responses import JSON
from api.validation import document_errors
from shared.queries import Q
from shared.schemas import Document, DocumentIn

_document_in = msgspec.json.Decoder(DocumentIn)


async def post_document(request: Request) -> Response:
    ctx = context(request)
    key = idempotency_key(request)
    # The body is read before a connection is taken, so a slow client never holds one.
    body = await read_body(request, ctx.settings.max_body_bytes)
    async with tenant_connection(request) as (conn, tenant_id):
        require_json(request)
        doc = decode_struct(body, _document_in, DocumentIn)
        if errors := document_errors(doc, ctx.settings):
            raise ValidationFailed("the document is invalid", errors)
        await ctx.queued_jobs.check(conn, tenant_id)
        answer = await accept_document(conn, ctx.settings, tenant_id, doc, key)
    await enqueue(ctx, tenant_id, answer)
    return JSON(answer, status_code=202, headers={"Location": answer.status_url})


async def get_document(request: Request) -> Response:
    document_id = path_id(request, "document_id", "document")
    async with tenant_connection(request) as (conn, tenant_id):
        row = await conn.fetchrow(Q.get_document, document_id, tenant_id)
    if row is None:
        raise NotFound("document not found")
    return JSON(Document(**dict(row)))


async def delete_document(request: Request) -> Response:
    document_id = path_id(request, "document_id", "document")
    async with tenant_connection(request) as (conn, tenant_id):
        deleted = await conn.fetchval(Q.delete_document, document_id, tenant_id)
    if deleted is None:
        raise NotFound("document not found")
    return Response(status_code=204)
