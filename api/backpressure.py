"""Backpressure: a tenant with too many queued jobs is told to slow down (429), others are not.

Counting a deep backlog on every request would cost more than the insert it guards, so each
process reuses a tenant's count for SEARCHHUB_BACKPRESSURE_RECHECK_S, and one recount at a time
serves all requests (the others go on with the last count meanwhile); the limit is therefore
approximate by what one process accepts in that time, which is what backpressure needs.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import asyncpg

from api.errors import RateLimited
from shared.db import tenant_connection
from shared.queries import Q
from shared.settings import Settings

RETRY_AFTER_S = 5


class QueuedJobsGuard:
    def __init__(self, settings: Settings) -> None:
        self.limit = settings.max_queued_per_tenant
        self.recheck_s = settings.backpressure_recheck_s
        self._counts: dict[uuid.UUID, tuple[float, int]] = {}
        self._recounts: dict[uuid.UUID, asyncio.Task[int]] = {}

    async def _recount(self, pool: asyncpg.Pool, tenant_id: uuid.UUID) -> int:
        try:
            async with tenant_connection(pool, tenant_id) as conn:
                queued = await conn.fetchval(Q.count_queued_capped, tenant_id, self.limit + 1)
            self._counts[tenant_id] = (time.monotonic(), queued)
            return queued
        finally:
            del self._recounts[tenant_id]

    async def check(self, pool: asyncpg.Pool, tenant_id: uuid.UUID, adding: int = 1) -> None:
        cached = self._counts.get(tenant_id)
        if cached is None or time.monotonic() - cached[0] >= self.recheck_s:
            recount = self._recounts.get(tenant_id)
            if recount is None:
                recount = self._recounts[tenant_id] = asyncio.create_task(self._recount(pool, tenant_id))
                # Retrieved here, so a failed recount nobody awaited is not reported as lost.
                recount.add_done_callback(lambda t: t.cancelled() or t.exception())
            if cached is None or self.recheck_s == 0:
                await asyncio.shield(recount)  # nothing to go on yet (or asked to count every time)
        counted_at, queued = self._counts[tenant_id]
        if queued + adding > self.limit:
            raise RateLimited(
                f"this tenant has {queued} or more jobs queued (limit {self.limit}); retry later",
                retry_after_s=RETRY_AFTER_S,
            )
        # Count what this process accepts meanwhile, so a burst cannot overshoot by a whole window.
        self._counts[tenant_id] = (counted_at, queued + adding)
