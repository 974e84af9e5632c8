"""Coalescing: work items submitted concurrently for one tenant are done by one set-based statement.

At a few thousand items a second, one statement and commit per item leaves PostgreSQL doing per-
statement work (parse, plan, commit, WAL flush) far more often than row work, and the client doing
a round trip per item. Here each caller adds its item to a queue and waits; a flusher takes what is
queued for the oldest item's tenant and runs ``run(conn, items)`` once for all of them, then answers
every caller. While a statement runs the next group gathers, so nothing waits on a timer: alone, an
item costs one statement as before; under load, groups grow by themselves.

A group holds one tenant's items (what a connection bound to one tenant by row-level security may
touch), and two items with the same ``key`` never share a group: the later one, and every later item
of that tenant, waits for the next group, so items of one key are done in arrival order. A group that
fails for a reason other than PostgreSQL being away is done again one item per statement, so one bad
item fails only its own caller.

Used by the API's coalesced single posts (api/writer.py) and the worker's claims and completions.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import asyncpg

from shared.db import discard_if_broken, is_unavailable
from shared.queries import Q

T = TypeVar("T")
R = TypeVar("R")

#: Runs a group: one result per item, in order. The connection is bound to the group's tenant.
Run = Callable[[asyncpg.Connection, list[T]], Awaitable[Sequence[R]]]
Connect = Callable[[uuid.UUID], contextlib.AbstractAsyncContextManager[asyncpg.Connection]]


@dataclass(slots=True, eq=False)
class _Item(Generic[T, R]):
    tenant_id: uuid.UUID
    value: T
    future: asyncio.Future[R]
    #: Its caller stopped waiting (cancelled) after the group was taken: see ``on_abandoned``.
    abandoned: bool = field(default=False)
    #: The group it was taken into, and the task running that group's statement.
    group: list[_Item[T, R]] = field(default_factory=list)
    running: asyncio.Task[None] | None = None


def _connection_lost(exc: BaseException) -> bool:
    """A connection that died unnoticed (a server restart, an idle timeout) fails its first
    statement this way; a timeout is not retried, as it would double the wait."""
    return is_unavailable(exc) and not isinstance(exc, TimeoutError)


class TenantBatcher(Generic[T, R]):
    def __init__(
        self,
        run: Run[T, R],
        connect: Connect,
        *,
        max_batch: int,
        max_in_flight: int,
        key: Callable[[T], Hashable | None] = lambda _: None,
        on_done: Callable[[T, R], None] | None = None,
        on_abandoned: Callable[[T, R], None] | None = None,
        on_idle: Callable[[], Awaitable[None]] | None = None,
        cancel_abandoned: bool = False,
    ) -> None:
        """``on_done`` sees every result, answered or not (its caller may have gone);
        ``on_abandoned`` sees the results whose callers were cancelled while their group ran, so
        that what the statement did for them can be undone; ``on_idle`` runs when the last group
        in flight is done and nothing waits (to give held connections back, say).
        ``cancel_abandoned`` runs each group's statement in a task of its own, cancelled once every
        caller in the group is (a stopping process must not wait behind its statements' locks);
        without it a group runs in the flusher itself, a task and a wait fewer per group."""
        self._run = run
        self._connect = connect
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._key = key
        self._on_done = on_done
        self._on_abandoned = on_abandoned
        self._on_idle = on_idle
        self._cancel_abandoned = cancel_abandoned
        self._queue: collections.deque[_Item[T, R]] = collections.deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, tenant_id: uuid.UUID, value: T) -> R:
        item: _Item[T, R] = _Item(tenant_id, value, asyncio.get_running_loop().create_future())
        self._queue.append(item)
        if self._in_flight < self.max_in_flight:
            self._in_flight += 1
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            # A cancelled caller cancels only its own future, never the statement of its group,
            # which runs in a task of its own and skips futures already done.
            return await item.future
        except asyncio.CancelledError:
            with contextlib.suppress(ValueError):
                self._queue.remove(item)  # not taken yet: withdrawn, nothing done for it
                raise
            item.abandoned = True
            if item.running is not None and all(i.abandoned for i in item.group):
                # Nobody waits for this statement any more (the process is stopping): cancel it,
                # so that its locks go and the callers' hand-backs do not wait behind them.
                item.running.cancel()
            raise

    def _take_group(self) -> list[_Item[T, R]]:
        tenant_id = self._queue[0].tenant_id
        group: list[_Item[T, R]] = []
        keep: list[_Item[T, R]] = []
        keys: set[Hashable] = set()
        blocked = False
        for item in self._queue:
            if blocked or item.tenant_id != tenant_id or len(group) >= self.max_batch:
                keep.append(item)
                continue
            key = self._key(item.value)
            if key is not None:
                if key in keys:
                    blocked = True  # this item and the tenant's later ones wait for the next group
                    keep.append(item)
                    continue
                keys.add(key)
            group.append(item)
        self._queue = collections.deque(keep)
        return group

    async def _flush(self) -> None:
        try:
            while self._queue:
                group = self._take_group()
                if not self._cancel_abandoned:
                    await self._run_group_safely(group)
                    continue
                running = asyncio.create_task(self._run_group_safely(group))
                for item in group:
                    item.group, item.running = group, running
                await asyncio.wait([running])  # ends also when cancelled: then nobody waits for it
        finally:
            self._in_flight -= 1
            if self._on_idle is not None and self._in_flight == 0 and not self._queue:
                await self._on_idle()

    async def _run_group_safely(self, group: list[_Item[T, R]]) -> None:
        """A bug past the statements (in a callback, say) fails the group's callers instead of
        ending the flusher and leaving every later caller waiting for good."""
        try:
            await self._run_group(group)
        except Exception as exc:
            self._fail(group, exc)

    async def _run_group(self, group: list[_Item[T, R]]) -> None:
        tenant_id = group[0].tenant_id
        for attempt in (1, 2):
            try:
                async with self._connect(tenant_id) as conn:
                    results = await self._run(conn, [i.value for i in group])
                break
            except Exception as exc:
                if attempt == 1 and _connection_lost(exc):
                    continue  # once more, on a fresh connection
                if is_unavailable(exc) or len(group) == 1:
                    self._fail(group, exc)
                    return
                await self._run_each(group)
                return
        for item, result in zip(group, results, strict=True):
            self._done(item, result)

    async def _run_each(self, group: list[_Item[T, R]]) -> None:
        for item in group:
            try:
                async with self._connect(item.tenant_id) as conn:
                    (result,) = await self._run(conn, [item.value])
            except Exception as exc:
                self._fail([item], exc)
            else:
                self._done(item, result)

    def _done(self, item: _Item[T, R], result: R) -> None:
        if self._on_done is not None:
            self._on_done(item.value, result)
        if item.abandoned:
            if self._on_abandoned is not None:
                self._on_abandoned(item.value, result)
        elif not item.future.done():
            item.future.set_result(result)

    @staticmethod
    def _fail(group: list[_Item[T, R]], exc: Exception) -> None:
        for item in group:
            # An abandoned item's future is read by nobody: asyncio would report its exception.
            if not item.abandoned and not item.future.done():
                item.future.set_exception(exc)

    async def drain(self) -> None:
        """Waits until every group taken or queued so far is done."""
        while self._tasks:
            await asyncio.wait(set(self._tasks))


class HeldConnections:
    """Connections kept out of the pool between statements, each with the tenant it is bound to:
    a flusher rebinds only when the tenant changes and never pays the pool's release reset. A
    connection whose statement failed goes back to the pool, which discards it if it is broken."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._held: list[tuple[asyncpg.Connection, uuid.UUID | None]] = []

    @contextlib.asynccontextmanager
    async def bound(self, tenant_id: uuid.UUID) -> AsyncIterator[asyncpg.Connection]:
        conn, bound = self._held.pop() if self._held else (await self.pool.acquire(), None)
        if conn.is_closed():  # the server ended it while it was held
            await self.pool.release(conn)
            conn, bound = await self.pool.acquire(), None
        try:
            if bound != tenant_id:
                await conn.execute(Q.set_tenant, str(tenant_id))
            yield conn
        except BaseException as exc:
            discard_if_broken(conn, exc)
            await self.pool.release(conn)
            raise
        self._held.append((conn, tenant_id))

    async def close(self) -> None:
        while self._held:
            await self.pool.release(self._held.pop()[0])
