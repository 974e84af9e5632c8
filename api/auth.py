"""Bearer API keys → tenant. Keys are stored as SHA-256 only; an unknown and a revoked key are
answered alike.

A known key's tenant is remembered for SEARCHHUB_AUTH_CACHE_S (default 10 s): without it every
request pays one more PostgreSQL round trip than its own work. The price is that a revoked key
keeps working on a process for up to that long. Unknown keys are never remembered.
"""

from __future__ import annotations

import time
import uuid

from starlette.requests import Request

from api.context import context
from api.errors import Unauthorized
from shared.keys import hash_key
from shared.queries import Q

#: Bounds the cache against many distinct keys; clearing it all is simpler than an LRU and rare.
AUTH_CACHE_MAX = 10_000


async def authenticate(request: Request) -> uuid.UUID:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing Authorization: Bearer <api key>")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("expected Authorization: Bearer <api key>")
    ctx = context(request)
    digest = hash_key(key)
    ttl = ctx.settings.auth_cache_s
    now = time.monotonic()
    cached = ctx.auth_cache.get(digest)
    if cached is not None and now - cached[1] < ttl:
        return cached[0]
    tenant_id = await ctx.pool.fetchval(Q.authenticate, digest)
    if tenant_id is None:
        ctx.auth_cache.pop(digest, None)
        raise Unauthorized("invalid API key")
    if ttl > 0:
        if len(ctx.auth_cache) >= AUTH_CACHE_MAX:
            ctx.auth_cache.clear()
        ctx.auth_cache[digest] = (tenant_id, now)
    return tenant_id
