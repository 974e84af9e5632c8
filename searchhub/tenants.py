"""Tenants and their API keys, for the CLI and `searchhub dev`."""

from __future__ import annotations

import uuid

import asyncpg

from shared.constants import API_KEY_DISPLAY_CHARS
from shared.keys import hash_key, new_key
from shared.queries import Q

DEV_TENANT = "dev"


class TenantExists(Exception):
    pass


async def create_tenant(conn: asyncpg.Connection, name: str) -> tuple[uuid.UUID, str]:
    """A new tenant and its first key (shown once: only the hash is kept)."""
    key, prefix, digest = new_key()
    async with conn.transaction():
        try:
            tenant_id = await conn.fetchval(Q.create_tenant, name)
        except asyncpg.UniqueViolationError:
            raise TenantExists(f"a tenant named {name!r} already exists") from None
        await conn.fetchval(Q.create_api_key, tenant_id, prefix, digest)
    return tenant_id, key


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
