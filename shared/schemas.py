"""msgspec types: the wire format of the HTTP API and of the queue payload.

The same types validate requests and generate /openapi.json, so the documented schema cannot drift.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from shared.constants import PAYLOAD_VERSION

ContentType = Literal["text/plain", "text/markdown", "text/html"]
JobStatus = Literal["queued", "processing", "indexed", "failed"]


class DocumentIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A document to ingest."""

    content: Annotated[str, msgspec.Meta(min_length=1, description="The text to index; not blank.")]
    title: str | None = None
    external_id: Annotated[
        str | None,
        msgspec.Meta(description="The tenant's own key; posting it again makes a new version."),
    ] = None
    content_type: ContentType = "text/plain"
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class BatchIn(msgspec.Struct, forbid_unknown_fields=True):
    documents: list[DocumentIn]


class Accepted(msgspec.Struct):
    """The answer to an accepted document: poll ``status_url`` for its job."""

    document_id: uuid.UUID
    job_id: uuid.UUID
    status: JobStatus
    status_url: str


class BatchAccepted(msgspec.Struct):
    items: list[Accepted]


class Document(msgspec.Struct):
    document_id: uuid.UUID
    external_id: str | None
    title: str | None
    content_type: ContentType
    metadata: dict[str, Any]
    version: int
    status: JobStatus | None
    job_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    indexed_at: datetime | None


class IndexJob(msgspec.Struct):
    job_id: uuid.UUID
    document_id: uuid.UUID
    document_version: int
    status: JobStatus
    attempts: int
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class IndexJobPage(msgspec.Struct):
    items: list[IndexJob]
    next_cursor: str | None


class SearchHit(msgspec.Struct):
    """One matching document."""

    document_id: uuid.UUID
    external_id: str | None
    title: Annotated[str | None, msgspec.Meta(description="The title as indexed.")]
    snippet: Annotated[
        str,
        msgspec.Meta(
            description="HTML: the best passage's best fragments, text escaped, query words in <mark>."
        ),
    ]
    score: Annotated[
        float,
        msgspec.Meta(description="ts_rank_cd of the best passage: title words weigh 1.0, body words 0.1."),
    ]
    metadata: dict[str, Any]


class SearchResults(msgspec.Struct):
    query: str
    hits: Annotated[list[SearchHit], msgspec.Meta(description="Highest score first.")]


class ErrorDetail(msgspec.Struct):
    path: str
    message: str


class ErrorInfo(msgspec.Struct):
    code: str
    message: str
    details: list[ErrorDetail] = msgspec.field(default_factory=list)


class ErrorBody(msgspec.Struct):
    error: ErrorInfo


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    checks: dict[str, str]


class IndexJobPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What travels in Redis: three ids and a version. Everything else is read from PostgreSQL."""

    tenant_id: uuid.UUID
    document_id: uuid.UUID
    job_id: uuid.UUID
    v: int = PAYLOAD_VERSION
