"""Bearer API keys → tenant. Keys are stored as SHA-256 only; an unknown and a revoked key are
answered alike."""

from __future__ import annotations

import uuid

from starlette.requests import Request

from api.context import context
from api.errors import Unauthorized
from shared.keys import hash_key
from shared.queries import Q


async def authenticate(request: Request) -> uuid.UUID:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing Authorization: Bearer <api key>")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("expected Authorization: Bearer <api key>")
    tenant_id = await context(request).pool.fetchval(Q.authenticate, hash_key(key))
    if tenant_id is None:
        raise Unauthorized("invalid API key")
    return tenant_id
