"""Tenants and their API keys, for the CLI and `searchhub dev`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.constants import API_KEY_DISPLAY_CHARS
from shared.keys import hash_key, new_key
from shared.queries import Q

DEV_TENANT = "dev"


class TenantExists(Exception):
    pass


class TenantNotFound(Exception):
    pass


@dataclass(frozen=True)
class KeyInfo:
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


async def create_tenant(conn: asyncpg.Connection, name: str) -> tuple[uuid.UUID, str]:
    """A new tenant and its first key (shown once: only the hash is kept)."""
    async with conn.transaction():
        try:
            tenant_id = await conn.fetchval(Q.create_tenant, name)
        except asyncpg.UniqueViolationError:
            raise TenantExists(f"a tenant named {name!r} already exists") from None
        key = await _issue_key(conn, tenant_id)
    return tenant_id, key


async def _issue_key(conn: asyncpg.Connection, tenant_id: uuid.UUID) -> str:
    for _ in range(5):  # display prefixes are unique; a clash (about 2^-54) just draws again
        key, prefix, digest = new_key()
        try:
            async with conn.transaction():
                await conn.fetchval(Q.create_api_key, tenant_id, prefix, digest)
        except asyncpg.UniqueViolationError:
            continue
        return key
    raise RuntimeError("could not draw a unique API key prefix")


async def find_tenant(conn: asyncpg.Connection, name_or_id: str) -> uuid.UUID:
    row = await conn.fetchrow(Q.find_tenant, name_or_id)
    if row is None:
        raise TenantNotFound(f"no tenant named {name_or_id!r}")
    return row["id"]


async def create_key(conn: asyncpg.Connection, tenant: str) -> str:
    return await _issue_key(conn, await find_tenant(conn, tenant))


async def list_keys(conn: asyncpg.Connection, tenant: str) -> list[KeyInfo]:
    rows = await conn.fetch(Q.list_api_keys, await find_tenant(conn, tenant))
    return [KeyInfo(**dict(r)) for r in rows]


async def revoke_key(conn: asyncpg.Connection, prefix: str) -> bool:
    return await conn.fetchval(Q.revoke_api_key, prefix) is not None


async def ensure_dev_tenant(conn: asyncpg.Connection, key: str | None) -> str:
    """The dev tenant, reachable with ``key`` (or a new random key): returns the key to print."""
    async with conn.transaction():
        tenant_id = await conn.fetchval(Q.get_tenant_by_name, DEV_TENANT)
        if tenant_id is None:
            tenant_id = await conn.fetchval(Q.create_tenant, DEV_TENANT)
        if key is None:
            key, prefix, digest = new_key()
        else:
            prefix, digest = key[:API_KEY_DISPLAY_CHARS], hash_key(key)
        await conn.execute(Q.ensure_api_key, tenant_id, prefix, digest)
    return key
