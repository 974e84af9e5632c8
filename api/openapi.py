"""OpenAPI 3.1 for the HTTP API. Schemas come from the msgspec types that validate requests and
encode responses; only the list of operations is written here."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from shared.schemas import (
    Accepted,
    BatchAccepted,
    BatchIn,
    Document,
    DocumentIn,
    ErrorBody,
    Health,
    IndexJob,
    IndexJobPage,
    Readiness,
    SearchResults,
)

_REF = "#/components/schemas/{name}"
_TYPES = (
    Accepted,
    BatchAccepted,
    BatchIn,
    Document,
    DocumentIn,
    ErrorBody,
    Health,
    IndexJob,
    IndexJobPage,
    Readiness,
    SearchResults,
)


def _ref(t: type) -> dict[str, str]:
    return {"$ref": _REF.format(name=t.__name__)}


def _json(t: type, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(t)}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _json(ErrorBody, "error") for c in codes}


_AUTH = [{"bearer": []}]
_ID = {"type": "string", "format": "uuid"}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _operation(summary: str, responses: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "responses": responses, **extra}


@cache
def spec() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(_TYPES, ref_template=_REF)
    idem = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "repeat with the same key and body: the first answer again, nothing written",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
    }
    location = {"Location": {"schema": {"type": "string"}, "description": "the job's status URL"}}
    accepted_202 = {**_json(Accepted, "accepted; poll status_url"), "headers": location}
    body_errors = _errors(400, 401, 409, 413, 415, 422, 429, 503)
    paths: dict[str, Any] = {
        "/v1/documents": {
            "post": _operation(
                "Accept a document for indexing",
                {"202": accepted_202, **body_errors},
                security=_AUTH,
                parameters=[idem],
                requestBody={"required": True, "content": {"application/json": {"schema": _ref(DocumentIn)}}},
            )
        },
        "/v1/documents/batch": {
            "post": _operation(
                "Accept 1 to 1000 documents at once: all valid or nothing written",
                {"202": _json(BatchAccepted, "accepted, items in request order"), **body_errors},
                security=_AUTH,
                parameters=[idem],
                requestBody={"required": True, "content": {"application/json": {"schema": _ref(BatchIn)}}},
            )
        },
        "/v1/documents/{document_id}": {
            "get": _operation(
                "A document with its latest job",
                {"200": _json(Document, "the document"), **_errors(401, 404, 503)},
                security=_AUTH,
                parameters=[_path_param("document_id")],
            ),
            "delete": _operation(
                "Delete a document; it leaves search at once",
                {"204": {"description": "deleted"}, **_errors(401, 404, 503)},
                security=_AUTH,
                parameters=[_path_param("document_id")],
            ),
        },
        "/v1/index-jobs": {
            "get": _operation(
                "Index jobs, newest first",
                {"200": _json(IndexJobPage, "a page of jobs"), **_errors(401, 422, 503)},
                security=_AUTH,
                parameters=[
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": "comma list of queued, processing, indexed, failed",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    },
                    {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                ],
            )
        },
        "/v1/index-jobs/{job_id}": {
            "get": _operation(
                "One index job",
                {"200": _json(IndexJob, "the job"), **_errors(401, 404, 503)},
                security=_AUTH,
                parameters=[_path_param("job_id")],
            )
        },
        "/v1/index-jobs/{job_id}/retry": {
            "post": _operation(
                "Re-drive a failed job as a new job for the document's latest version",
                {"202": accepted_202, **_errors(401, 404, 409, 503)},
                security=_AUTH,
                parameters=[_path_param("job_id")],
            )
        },
        "/v1/search": {
            "get": _operation(
                "Search the tenant's indexed documents, highest score first",
                {"200": _json(SearchResults, "hits"), **_errors(401, 422, 503)},
                security=_AUTH,
                parameters=[
                    {
                        "name": "q",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                        "description": 'web-search syntax: words, "a phrase", -word, or',
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
                    },
                    {
                        "name": "offset",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 10000, "default": 0},
                    },
                    {
                        "name": "filter",
                        "in": "query",
                        "schema": {"type": "string"},
                        "description": 'a JSON object the metadata must contain, e.g. {"lang":"en"}',
                    },
                ],
            )
        },
        "/healthz": {"get": _operation("The process is alive", {"200": _json(Health, "alive")})},
        "/readyz": {
            "get": _operation(
                "PostgreSQL and Redis answer",
                {"200": _json(Readiness, "ready"), "503": _json(Readiness, "something is down")},
            )
        },
        "/metrics": {
            "get": _operation(
                "Prometheus metrics",
                {
                    "200": {
                        "description": "Prometheus text format",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            )
        },
        "/openapi.json": {
            "get": _operation(
                "This document", {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}}
            )
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Search Hub", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
