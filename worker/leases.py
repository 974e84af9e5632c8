"""The leases of a worker's running attempts, renewed together.

A job's lease (index_jobs.lease_expires_at) says its worker is alive; one that is not renewed for
SEARCHHUB_PROCESSING_LEASE_S is taken back by the reconciler. Every lease/3 one statement per
tenant renews all of this process's running attempts, so renewal costs the same for 1 or 500 jobs
and nothing per job.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from collections.abc import Iterator

import asyncpg
from loguru import logger

from shared.db import is_unavailable, tenant_connection
from worker import transitions


class Leases:
    def __init__(self, pool: asyncpg.Pool, lease_s: float) -> None:
        self.pool = pool
        self.lease_s = lease_s
        #: job → (tenant, attempt) of the attempts running in this process.
        self._running: dict[uuid.UUID, tuple[uuid.UUID, int]] = {}
        self._renewer: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def held(self, tenant_id: uuid.UUID, job_id: uuid.UUID, attempt: int) -> Iterator[None]:
        """Keeps the attempt's lease renewed while the block runs."""
        self._running[job_id] = (tenant_id, attempt)
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_forever())
        try:
            yield
        finally:
            if self._running.get(job_id) == (tenant_id, attempt):
                del self._running[job_id]

    async def _renew_forever(self) -> None:
        while self._running:
            await asyncio.sleep(self.lease_s / 3)
            await self.renew_once()

    async def renew_once(self) -> None:
        by_tenant: dict[uuid.UUID, list[tuple[uuid.UUID, int]]] = collections.defaultdict(list)
        for job_id, (tenant_id, attempt) in self._running.items():
            by_tenant[tenant_id].append((job_id, attempt))
        for tenant_id, attempts in by_tenant.items():
            try:
                async with tenant_connection(self.pool, tenant_id) as conn:
                    ours = await transitions.renew_many(conn, attempts, self.lease_s)
            except Exception as exc:
                # Away: the next round tries again while the leases last. Anything else is a bug,
                # reported, and must not stop the renewal of the other tenants' jobs.
                if not is_unavailable(exc):
                    logger.opt(exception=exc).error("lease_renewal_failed", tenant_id=str(tenant_id))
                continue
            for job_id, attempt in attempts:
                if job_id not in ours and self._running.get(job_id) == (tenant_id, attempt):
                    del self._running[job_id]  # taken back: its final write will be refused

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
