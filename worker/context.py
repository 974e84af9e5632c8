"""What a job needs from its process, created once per worker process."""

from __future__ import annotations

import asyncio
import time

import asyncpg
from loguru import logger

from shared.batching import HeldConnections, TenantBatcher
from shared.schemas import IndexJobPayload
from shared.settings import Settings
from worker import transitions
from worker.leases import Leases
from worker.outcomes import hand_back

#: Groups in flight per batcher: one runs while the next gathers. With two, a delivery arriving
#: while one statement runs took the idle flusher at once, alone: groups of 3 to 4 jobs instead of
#: 8 to 16, and half the throughput. One is safe because no grouped statement waits on a lock
#: (complete_jobs skips locked documents, which complete alone outside the group).
STATEMENTS_IN_FLIGHT = 1

#: A group holds at most this share of the worker's concurrent jobs. With groups as large as the
#: concurrency, every job of a worker moved in lockstep: all claimed together, then all extracted,
#: then all completed while no slot was free to claim the next ones. With halves, one half's
#: completion runs while the other half is claimed and extracted.
GROUPS_PER_WORKER = 2


class Outage:
    """Whether PostgreSQL is away as far as this process saw last, so that an outage is reported
    once and its end once, not by every delivery that meets it."""

    def __init__(self) -> None:
        self.down = False

    def begin(self) -> bool:
        """Marks it down; True if that is news."""
        first, self.down = not self.down, True
        return first

    def end(self) -> bool:
        """Marks it up; True if it was down."""
        was, self.down = self.down, False
        return was


class WorkerContext:
    """The pool, and the batchers that turn the concurrent jobs' claims and completions into one
    statement per group (shared/batching.py): at a few thousand jobs a second, per-job statements
    cost the worker more CPU than everything else it does."""

    def __init__(
        self, settings: Settings, pool: asyncpg.Pool, lease_pool: asyncpg.Pool | None = None
    ) -> None:
        """``lease_pool``: the connection lease renewal uses. Renewal is how the worker says it is
        alive, so it must not wait behind the jobs for a connection: with every connection of
        ``pool`` held by jobs waiting on document locks, leases ran out and live jobs were taken
        back."""
        self.settings = settings
        self.pool = pool
        self.database = Outage()
        self.leases = Leases(lease_pool or pool, settings.processing_lease_s)
        lease_s = settings.processing_lease_s
        group = max(1, settings.worker_concurrency // GROUPS_PER_WORKER)
        # While groups follow each other, each batcher keeps its connections bound to their tenant
        # (no rebinding, no pool reset per group); once it is idle it gives them back.
        self._claiming, self._completing = HeldConnections(pool), HeldConnections(pool)
        self.claims: TenantBatcher[IndexJobPayload, transitions.Claimed] = TenantBatcher(
            lambda conn, payloads: transitions.claim_many(conn, payloads[0].tenant_id, payloads, lease_s),
            self._claiming.bound,
            max_batch=group,
            max_in_flight=STATEMENTS_IN_FLIGHT,
            key=lambda p: p.document_id,
            on_abandoned=self._hand_back_abandoned,
            on_idle=self._claiming.close,
            cancel_abandoned=True,
        )
        self.completions: TenantBatcher[transitions.Done, bool | None] = TenantBatcher(
            # Late-bound, so that tests can hold a completion (tests/test_search.py).
            lambda conn, done: transitions.complete_many(conn, done),
            self._completing.bound,
            max_batch=group,
            max_in_flight=STATEMENTS_IN_FLIGHT,
            key=lambda done: done[2].document_id,
            on_idle=self._completing.close,
            cancel_abandoned=True,
        )
        self._hand_backs: set[asyncio.Task[None]] = set()

    def _hand_back_abandoned(self, payload: IndexJobPayload, claimed: transitions.Claimed) -> None:
        """A delivery cancelled (the worker stopping) while its claim ran: if the job was claimed,
        hand it back now rather than leave it to the reconciler once its lease ends."""
        if claimed is None:
            return
        task = asyncio.create_task(self._hand_back(payload, claimed[0]))
        self._hand_backs.add(task)
        task.add_done_callback(self._hand_backs.discard)

    async def _hand_back(self, payload: IndexJobPayload, attempt: int) -> None:
        log = logger.bind(tenant_id=str(payload.tenant_id), job_id=str(payload.job_id))
        await hand_back(self.pool, payload, log, attempt, time.perf_counter(), before_work=True)

    async def close(self) -> None:
        """Waits for the statements in flight and the hand-backs, and stops renewing leases."""
        await self.claims.drain()
        await self.completions.drain()
        while self._hand_backs:
            await asyncio.wait(set(self._hand_backs))
        await self.leases.close()
        await self._claiming.close()
        await self._completing.close()


#: Key of the WorkerContext in arq's ``ctx`` dict.
CTX_KEY = "searchhub"
