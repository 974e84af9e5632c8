"""PostgreSQL access: the pool both services use, and which errors mean "the database is away"."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import msgspec

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
)


def is_unavailable(exc: BaseException) -> bool:
    return isinstance(exc, UNAVAILABLE_ERRORS)


def _encode_jsonb(value: Any) -> str:
    return _json_encode(value).decode()


async def _init_connection_text(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec(
        "jsonb", encoder=_encode_jsonb, decoder=_json_decode, schema="pg_catalog", format="text"
    )


async def create_pool(settings: Settings, *, max_size: int | None = None) -> asyncpg.Pool:
    """A pool that opens connections lazily, so a process can start while PostgreSQL is away and
    report it, and reconnects by itself when a connection breaks."""
    pool = await asyncpg.create_pool(
        settings.require("database_url"),
        min_size=0,
        max_size=max_size or settings.db_pool_max,
        init=_init_connection_text,
        timeout=5,
        command_timeout=60,
        max_inactive_connection_lifetime=300,
    )
    assert pool is not None
    return pool


async def connect(settings: Settings) -> asyncpg.Connection:
    """One connection, for commands (migrate, tenant create)."""
    conn = await asyncpg.connect(settings.require("database_url"), timeout=10)
    await _init_connection_text(conn)
    return conn
