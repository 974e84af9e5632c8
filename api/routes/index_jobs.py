"""/v1/index-jobs: follow jobs, list them, re-drive failed ones."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api.auth import tenant_connection
from api.context import context
from api.errors import Conflict, NotFound, invalid
from api.ingest import accepted, enqueue
from api.params import int_param, path_id
from api.responses import JSON
from shared.constants import JOB_STATUSES
from shared.queries import Q
from shared.schemas import IndexJob, IndexJobPage

_cursor_type = tuple[datetime, uuid.UUID]
_cursor_decoder = msgspec.json.Decoder(_cursor_type)


def encode_cursor(created_at: datetime, job_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode((created_at, job_id))).decode().rstrip("=")


def decode_cursor(raw: str) -> tuple[datetime, uuid.UUID]:
    try:
        return _cursor_decoder.decode(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise invalid("cursor", "is not a cursor this API returned") from None


def statuses(request: Request) -> list[str] | None:
    raw = request.query_params.get("status")
    if raw is None or not raw.strip():
        return None
    wanted = [s.strip() for s in raw.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in JOB_STATUSES]
    if unknown:
        raise invalid("status", f"unknown status {unknown[0]!r}; expected some of {', '.join(JOB_STATUSES)}")
    return wanted


async def get_job(request: Request) -> Response:
    job_id = path_id(request, "job_id", "index job")
    async with tenant_connection(request) as (conn, tenant_id):
        row = await conn.fetchrow(Q.get_job, job_id, tenant_id)
    if row is None:
        raise NotFound("index job not found")
    return JSON(IndexJob(**dict(row)))


async def list_jobs(request: Request) -> Response:
    async with tenant_connection(request) as (conn, tenant_id):
        wanted = statuses(request)
        limit = int_param(request, "limit", 50, 1, 200)
        cursor = request.query_params.get("cursor")
        after, after_id = decode_cursor(cursor) if cursor else (None, None)
        # One row more than asked tells whether another page exists without a count.
        rows = await conn.fetch(Q.list_jobs, tenant_id, wanted, after, after_id, limit + 1)
    items = [IndexJob(**dict(r)) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].created_at, items[-1].job_id) if len(rows) > limit else None
    return JSON(IndexJobPage(items=items, next_cursor=next_cursor))


async def retry_job(request: Request) -> Response:
    job_id = path_id(request, "job_id", "index job")
    async with tenant_connection(request) as (conn, tenant_id):
        row = await conn.fetchrow(Q.retry_failed_job, job_id, tenant_id, uuid.uuid4())
        if row is None:
            job = await conn.fetchrow(Q.get_job, job_id, tenant_id)
            if job is None:
                raise NotFound("index job not found")
            raise Conflict(f"only a failed job can be retried; this one is {job['status']}")
    ctx = context(request)
    answer = accepted(row["document_id"], row["job_id"])
    enqueue(ctx, tenant_id, answer)
    return JSON(answer, status_code=202, headers={"Location": answer.status_url})
