"""Bearer API keys → tenant, and connections bound to that tenant for row-level security.

Keys are stored as SHA-256 only; an unknown and a revoked key are answered alike. A known key's
tenant is remembered (api.key_cache) until a revocation notice or its age drops it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg
from starlette.requests import Request

from api.context import context
from api.errors import Unauthorized
from shared.keys import hash_key
from shared.queries import Q


def bearer_key(request: Request) -> str:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("missing Authorization: Bearer <api key>")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("expected Authorization: Bearer <api key>")
    return key


async def _lookup(conn: asyncpg.Connection | asyncpg.Pool, digest: bytes) -> uuid.UUID:
    # The statement also binds its session to the tenant (see sql/queries/tenants.sql).
    tenant_id = await conn.fetchval(Q.authenticate, digest)
    if tenant_id is None:
        raise Unauthorized("invalid API key")
    return tenant_id


async def authenticate(request: Request) -> uuid.UUID:
    """The caller's tenant, for handlers that hand their writes on (api.writer)."""
    ctx = context(request)
    digest = hash_key(bearer_key(request))
    tenant_id = ctx.keys.get(digest)
    if tenant_id is None:
        tenant_id = await _lookup(ctx.pool, digest)
        ctx.keys.put(digest, tenant_id)
    return tenant_id


@contextlib.asynccontextmanager
async def tenant_connection(request: Request) -> AsyncIterator[tuple[asyncpg.Connection, uuid.UUID]]:
    """The caller's tenant and a connection bound to it for the request: one round trip either
    way (the key lookup binds as it checks; a remembered key only binds). Releasing the connection
    unbinds it."""
    ctx = context(request)
    digest = hash_key(bearer_key(request))
    async with ctx.pool.acquire() as conn:
        tenant_id = ctx.keys.get(digest)
        if tenant_id is None:
            tenant_id = await _lookup(conn, digest)
            ctx.keys.put(digest, tenant_id)
        else:
            await conn.execute(Q.set_tenant, str(tenant_id))
        yield conn, tenant_id
