"""/v1/documents: accept documents (202), read and delete them."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api.auth import authenticate, tenant_connection
from api.body import decode_json, decode_struct, field_errors, read_body, require_json
from api.context import context
from api.errors import InvalidJson, NotFound, ValidationFailed
from api.ingest import accept_batch, accept_document
from api.params import idempotency_key, path_id
from api.responses import JSON
from api.validation import document_errors
from shared.queries import Q
from shared.schemas import BatchIn, Document, DocumentIn, ErrorDetail
from shared.settings import Settings

_document_in = msgspec.json.Decoder(DocumentIn)
_batch_in = msgspec.json.Decoder(BatchIn)


async def post_document(request: Request) -> Response:
    ctx = context(request)
    tenant_id = await authenticate(request)
    require_json(request)
    key = idempotency_key(request)
    doc = decode_struct(await read_body(request, ctx.settings.max_body_bytes), _document_in, DocumentIn)
    if errors := document_errors(doc, ctx.settings):
        raise ValidationFailed("the document is invalid", errors)
    await ctx.queued_jobs.check(ctx.pool, tenant_id)
    answer = await accept_document(ctx, tenant_id, doc, key)
    return JSON(answer, status_code=202, headers={"Location": answer.status_url})


async def post_batch(request: Request) -> Response:
    ctx = context(request)
    tenant_id = await authenticate(request)
    require_json(request)
    key = idempotency_key(request)
    docs = decode_batch(await read_body(request, ctx.settings.max_body_bytes), ctx.settings)
    await ctx.queued_jobs.check(ctx.pool, tenant_id, adding=len(docs))
    answer = await accept_batch(ctx, tenant_id, docs, key)
    return JSON(answer, status_code=202)


def decode_batch(body: bytes, settings: Settings) -> list[DocumentIn]:
    """The batch's documents, or one 422 naming every bad field of every item (nothing is
    written unless all are valid)."""
    try:
        docs = _batch_in.decode(body).documents
    except msgspec.ValidationError:
        errors = _raw_batch_errors(decode_json(body), settings)
        raise ValidationFailed("the batch is invalid", errors) from None
    except msgspec.DecodeError:
        decode_json(body)  # raises the precise 400 or 422
        raise InvalidJson("the body is not valid JSON") from None
    errors = _count_errors(len(docs), settings)
    seen: dict[str, int] = {}
    for index, doc in enumerate(docs):
        prefix = f"documents[{index}]"
        errors.extend(document_errors(doc, settings, prefix))
        if doc.external_id:
            # One statement cannot write two versions of one row; a client wanting both sends them
            # in order, in two batches (as `searchhub import` does).
            first = seen.setdefault(doc.external_id, index)
            if first != index:
                message = f"repeats the external_id of documents[{first}] in the same batch"
                errors.append(ErrorDetail(path=f"{prefix}.external_id", message=message))
    if errors:
        raise ValidationFailed("the batch is invalid", errors)
    return docs


def _count_errors(count: int, settings: Settings) -> list[ErrorDetail]:
    limit = settings.max_batch_documents
    if not 1 <= count <= limit:
        return [ErrorDetail(path="documents", message=f"must hold 1 to {limit} documents, not {count}")]
    return []


def _raw_batch_errors(raw: object, settings: Settings) -> list[ErrorDetail]:
    # Slow path, only for a batch msgspec refused: name every bad field, item by item.
    if not isinstance(raw, dict):
        return [ErrorDetail(path="$", message="expected a JSON object")]
    errors = [ErrorDetail(path=k, message="unknown field") for k in raw if k != "documents"]
    items = raw.get("documents")
    if not isinstance(items, list):
        message = "required field is missing" if items is None else "expected an array of documents"
        return [*errors, ErrorDetail(path="documents", message=message)]
    errors.extend(_count_errors(len(items), settings))
    for index, item in enumerate(items):
        prefix = f"documents[{index}]"
        item_errors = field_errors(item, DocumentIn, prefix)
        if not item_errors:
            item_errors = document_errors(msgspec.convert(item, DocumentIn), settings, prefix)
        errors.extend(item_errors)
    return errors or [ErrorDetail(path="$", message="invalid body")]


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
