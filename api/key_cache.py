"""Which tenant a key belongs to, remembered so that most requests skip the key lookup.

A revoked key must be refused at once, so the cache only serves while it hears PostgreSQL's
revocation notices: a trigger on api_keys (sql/migrations/0004_security.sql) sends
NOTIFY searchhub_api_keys on every revocation or deletion, and the listener drops the whole cache
when one arrives. While the listening connection is down, the cache serves nothing and every
request looks its key up; the listener reconnects by itself. Entries also age out after
SEARCHHUB_AUTH_CACHE_S, a bound on staleness should a notice ever be missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import asyncpg
from loguru import logger

from shared.db import UNAVAILABLE_ERRORS
from shared.settings import Settings

CHANNEL = "searchhub_api_keys"
#: Bounds the cache against many distinct keys; clearing it all is simpler than an LRU and rare.
MAX_ENTRIES = 10_000
RECONNECT_S = 1.0


class KeyCache:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.listening = False  # set by the listener; no notices, no cache
        self._entries: dict[bytes, tuple[uuid.UUID, float]] = {}

    def get(self, digest: bytes) -> uuid.UUID | None:
        if not self.listening:
            return None
        entry = self._entries.get(digest)
        if entry is None or time.monotonic() - entry[1] >= self.ttl_s:
            return None
        return entry[0]

    def put(self, digest: bytes, tenant_id: uuid.UUID) -> None:
        if not self.listening:
            return
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = (tenant_id, time.monotonic())

    def clear(self) -> None:
        self._entries.clear()


class RevocationListener:
    """Keeps a connection LISTENing for revocations; the cache serves only while it is up."""

    def __init__(self, settings: Settings, cache: KeyCache) -> None:
        self.settings = settings
        self.cache = cache
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.cache.ttl_s > 0:
            self._task = asyncio.create_task(self._run(), name="searchhub-key-revocations")

    def _lost(self) -> None:
        self.cache.listening = False
        self.cache.clear()

    async def _run(self) -> None:
        while True:
            try:
                await self._listen_once()
            except UNAVAILABLE_ERRORS:
                pass
            finally:
                self._lost()
            await asyncio.sleep(RECONNECT_S)

    async def _listen_once(self) -> None:
        conn = await asyncpg.connect(self.settings.require("database_url"), timeout=5)
        try:
            closed = asyncio.Event()
            conn.add_termination_listener(lambda _: closed.set())
            await conn.add_listener(CHANNEL, lambda *_: self.cache.clear())
            self.cache.clear()
            self.cache.listening = True
            await closed.wait()
            logger.warning("key_revocation_listener_lost")
        finally:
            if not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._lost()
