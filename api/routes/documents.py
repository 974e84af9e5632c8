"""/v1/documents: accept documents (202), read and delete them."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api.auth import authenticate
from api.body import decode_struct, read_body, require_json
from api.context import context
from api.errors import NotFound, ValidationFailed
from api.ingest import accept_document
from api.params import idempotency_key, path_id
from api.responses import JSON
from api.validation import document_errors
from shared.queries import Q
from shared.schemas import Document, DocumentIn

_document_in = msgspec.json.Decoder(DocumentIn)


async def post_document(request: Request) -> Response:
    ctx = context(request)
    tenant_id = await authenticate(request)
    require_json(request)
    key = idempotency_key(request)
    doc = decode_struct(await read_body(request, ctx.settings.max_body_bytes), _document_in, DocumentIn)
    if errors := document_errors(doc, ctx.settings):
        raise ValidationFailed("the document is invalid", errors)
    answer = await accept_document(ctx, tenant_id, doc, key)
    return JSON(answer, status_code=202, headers={"Location": answer.status_url})


async def get_document(request: Request) -> Response:
    ctx = context(request)
    tenant_id = await authenticate(request)
    document_id = path_id(request, "document_id", "document")
    row = await ctx.pool.fetchrow(Q.get_document, document_id, tenant_id)
    if row is None:
        raise NotFound("document not found")
    return JSON(Document(**dict(row)))


async def delete_document(request: Request) -> Response:
    ctx = context(request)
    tenant_id = await authenticate(request)
    document_id = path_id(request, "document_id", "document")
    if await ctx.pool.fetchval(Q.delete_document, document_id, tenant_id) is None:
        raise NotFound("document not found")
    return Response(status_code=204)
