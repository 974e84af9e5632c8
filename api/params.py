"""Path and query parameters: ids that are not UUIDs are answered as missing (404), like ids of
other tenants, so ids reveal nothing."""

from __future__ import annotations

import uuid

from starlette.requests import Request

from api.errors import NotFound, invalid


def path_id(request: Request, name: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.path_params[name])
    except ValueError:
        raise NotFound(f"{what} not found") from None


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name, "must be an integer") from None
    if not low <= value <= high:
        raise invalid(name, f"must be between {low} and {high}")
    return value


def idempotency_key(request: Request) -> str | None:
    key = request.headers.get("idempotency-key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable() or not key.isascii():
        raise invalid("Idempotency-Key", "must be 1 to 255 printable ASCII characters")
    return key
