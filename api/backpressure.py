"""Backpressure: a tenant with too many queued jobs is told to slow down (429), others are not.

Counting a deep backlog on every request would cost more than the insert it guards, so each
process reuses a tenant's count for SEARCHHUB_BACKPRESSURE_RECHECK_S; the limit is therefore
approximate by what one process accepts in that time, which is what backpressure needs.
"""

from __future__ import annotations

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

    async def check(self, pool: asyncpg.Pool, tenant_id: uuid.UUID, adding: int = 1) -> None:
        now = time.monotonic()
        cached = self._counts.get(tenant_id)
        if cached is None or now - cached[0] >= self.recheck_s:
            async with tenant_connection(pool, tenant_id) as conn:
                queued = await conn.fetchval(Q.count_queued_capped, tenant_id, self.limit + 1)
            self._counts[tenant_id] = (now, queued)
        else:
            queued = cached[1]
        if queued + adding > self.limit:
            raise RateLimited(
                f"this tenant has {queued} or more jobs queued (limit {self.limit}); retry later",
                retry_after_s=RETRY_AFTER_S,
            )
        # Count what this process accepts meanwhile, so a burst cannot overshoot by a whole window.
        self._counts[tenant_id] = (self._counts[tenant_id][0], queued + adding)
