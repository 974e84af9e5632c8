"""PostgreSQL access: the pool both services use, and which errors mean "the database is away"."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec

from shared.queries import Q
from shared.settings import Settings

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode

#: Errors that say PostgreSQL is unreachable or restarting, not that our statement is wrong:
#: callers answer 503 or retry later instead of failing the work.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    asyncio.TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,  # "connection is closed", pool closing
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,  # starting up or shutting down
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    # The client's protocol state broke with its connection ("another operation is in progress"),
    # seen when the server shuts down while a statement's types are being looked up.
    asyncpg.exceptions.InternalClientError,
)


def is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, UNAVAILABLE_ERRORS)


def _encode_jsonb(value: Any) -> str:
    return _json_encode(value).decode()


async def _init_connection_text(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_json_decode, schema="pg_catalog", format="text"
    )


async def create_pool(
    settings: Settings, *, max_size: int | None = None, restricted: bool = True
) -> asyncpg.Pool:
    """A pool that opens connections lazily, so a process can start while PostgreSQL is away and
    report it, and reconnects by itself when a connection breaks.

    ``restricted`` connections act as SEARCHHUB_DB_ROLE, which row-level security confines to the
    tenant set by ``tenant_connection`` (or by the authenticate query). Only cross-tenant
    maintenance (the reconciler) uses an unrestricted pool."""
    role = settings.db_role if restricted else ""

    async def init(conn: asyncpg.Connection) -> None:
        await _init_connection_text(conn)
        if role:
            await conn.execute(Q.set_role, role)

    pool = await asyncpg.create_pool(
        settings.require("database_url"),
        min_size=0,
        max_size=max_size or settings.db_pool_max,
        init=init,
        timeout=settings.db_connect_timeout_s,
        command_timeout=60,
        max_inactive_connection_lifetime=300,
    )
    assert pool is not None
    return pool


def discard_if_broken(conn: asyncpg.Connection, exc: BaseException) -> None:
    """Closes a connection whose client state an error broke, so that its pool opens a new one
    instead of handing it out again (where its next statement fails the same way)."""
    if isinstance(exc, asyncpg.exceptions.InternalClientError) and not conn.is_closed():
        conn.terminate()


@contextlib.asynccontextmanager
async def tenant_connection(pool: asyncpg.Pool, tenant_id: uuid.UUID) -> AsyncIterator[asyncpg.Connection]:
    """A connection bound to one tenant: RLS shows it that tenant's rows only."""
    async with pool.acquire() as conn:
        try:
            await conn.execute(Q.set_tenant, str(tenant_id))
            yield conn
        except BaseException as exc:
            discard_if_broken(conn, exc)
            raise


async def connect(settings: Settings) -> asyncpg.Connection:
    """One connection, for commands (migrate, tenant create)."""
    conn = await asyncpg.connect(settings.require("database_url"), timeout=10)
    await _init_connection_text(conn)
    return conn
