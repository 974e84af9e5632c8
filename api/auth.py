"""Bearer API keys → tenant. Keys are stored as SHA-256 only; an unknown and a revoked key are
answered alike."""

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


@contextlib.asynccontextmanager
async def tenant_connection(request: Request) -> AsyncIterator[tuple[asyncpg.Connection, uuid.UUID]]:
    """The caller's tenant and a connection bound to it for the request.

    The authenticate statement both checks the key and binds the session to its tenant, so row-level
    security costs no extra round trip; releasing the connection unbinds it."""
    key = bearer_key(request)
    async with context(request).pool.acquire() as conn:
        tenant_id = await conn.fetchval(Q.authenticate, hash_key(key))
        if tenant_id is None:
            raise Unauthorized("invalid API key")
        yield conn, tenant_id
