"""Coalesced writes: single POSTs that arrive together are written by one set-based statement.

At 64 concurrent clients, one statement and commit per document leaves PostgreSQL doing per-
statement work (parse, plan, commit, WAL record) far more often than row work; the
ceiling-B bench measures that limit near 2,000 documents/s on two cores. Here each request adds its
document to a queue and waits; a flusher takes everything queued and writes it with
``ingest_documents`` (the batch endpoint's statement), then answers every request. While a
statement runs the next group gathers, so nothing waits on a timer: alone, a request costs one
statement as before; under load, groups grow by themselves.

Each request is still answered only after its rows are committed. A statement holds one tenant's
documents (what a connection bound to one tenant by row-level security may write) and each
external_id at most once, so two posts of one external_id become two versions in arrival order.
A group that fails for a reason other than PostgreSQL being away is written again one document per
statement, so one bad document fails only its own request.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import asyncpg
import msgspec

from shared.db import is_unavailable
from shared.queries import Q
from shared.schemas import DocumentIn, IndexJobPayload

_encode_text = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Written:
    tenant_id: uuid.UUID
    document_id: uuid.UUID
    job_id: uuid.UUID

    def payload(self) -> IndexJobPayload:
        return IndexJobPayload(tenant_id=self.tenant_id, document_id=self.document_id, job_id=self.job_id)


async def write_many(
    conn: asyncpg.Connection, tenant_ids: Sequence[uuid.UUID], docs: Sequence[DocumentIn]
) -> list[Written]:
    """Every document and its job in one statement (one transaction, one round trip)."""
    n = len(docs)
    rows = await conn.fetch(
        Q.ingest_documents,
        tenant_ids,
        [uuid.uuid4() for _ in range(n)],
        [d.external_id for d in docs],
        [d.title for d in docs],
        [d.content for d in docs],
        [d.content_type for d in docs],
        [_encode_text.encode(d.metadata).decode() for d in docs],
        [uuid.uuid4() for _ in range(n)],
    )
    assert len(rows) == n, (len(rows), n)
    return [Written(t, r["document_id"], r["job_id"]) for t, r in zip(tenant_ids, rows, strict=True)]


async def write_one(conn: asyncpg.Connection, tenant_id: uuid.UUID, doc: DocumentIn) -> Written:
    return (await write_many(conn, [tenant_id], [doc]))[0]


@dataclass(slots=True)
class _Item:
    tenant_id: uuid.UUID
    doc: DocumentIn
    future: asyncio.Future[Written]


class IngestWriter:
    def __init__(
        self,
        pool: asyncpg.Pool,
        on_written: Callable[[Written], None],
        *,
        max_batch: int,
        max_in_flight: int,
    ) -> None:
        self.pool = pool
        self.on_written = on_written
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._queue: collections.deque[_Item] = collections.deque()
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()
        # Connections the flushers keep between statements, with the tenant each is bound to:
        # a flusher rebinds only when the tenant changes and never pays the pool's release reset.
        self._held: list[tuple[asyncpg.Connection, uuid.UUID | None]] = []

    async def write(self, tenant_id: uuid.UUID, doc: DocumentIn) -> Written:
        future: asyncio.Future[Written] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(tenant_id, doc, future))
        if self._in_flight < self.max_in_flight:
            self._in_flight += 1
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    def _take_group(self) -> list[_Item]:
        """The oldest waiting document's tenant's documents, in arrival order. One tenant per
        statement keeps a statement within what row-level security bound to one tenant allows;
        the others keep their places for the next statement."""
        tenant_id = self._queue[0].tenant_id
        group: list[_Item] = []
        keep: list[_Item] = []
        keys: set[str] = set()
        blocked = False
        for item in self._queue:
            if blocked or item.tenant_id != tenant_id or len(group) >= self.max_batch:
                keep.append(item)
                continue
            external_id = item.doc.external_id
            if external_id is not None:
                if external_id in keys:
                    # This next version, and all that follow it, wait for the next statement.
                    blocked = True
                    keep.append(item)
                    continue
                keys.add(external_id)
            group.append(item)
        self._queue = collections.deque(keep)
        return group

    async def _flush(self) -> None:
        try:
            while self._queue:
                await self._write_group(self._take_group())
        finally:
            self._in_flight -= 1

    @contextlib.asynccontextmanager
    async def _bound(self, tenant_id: uuid.UUID) -> AsyncIterator[asyncpg.Connection]:
        """A held connection bound to ``tenant_id`` (one tenant per statement, as row-level
        security requires). A connection that failed goes back to the pool, which discards it if
        it is broken, and the next statement takes a fresh one."""
        conn, bound = self._held.pop() if self._held else (await self.pool.acquire(), None)
        if conn.is_closed():  # the server ended it while it was held (restart, idle timeout)
            await self.pool.release(conn)
            conn, bound = await self.pool.acquire(), None
        try:
            if bound != tenant_id:
                await conn.execute(Q.set_tenant, str(tenant_id))
            yield conn
        except BaseException:
            await self.pool.release(conn)
            raise
        self._held.append((conn, tenant_id))

    async def _write_group(self, group: list[_Item]) -> None:
        tenant_id = group[0].tenant_id
        for attempt in (1, 2):
            reused = bool(self._held)
            try:
                async with self._bound(tenant_id) as conn:
                    written = await write_many(conn, [i.tenant_id for i in group], [i.doc for i in group])
                break
            except Exception as exc:
                if is_unavailable(exc) and reused and attempt == 1:
                    continue  # a held connection can die unnoticed (a server restart): once more, fresh
                if is_unavailable(exc) or len(group) == 1:
                    self._fail(group, exc)
                    return
                await self._write_each(group)
                return
        for item, result in zip(group, written, strict=True):
            self._done(item, result)

    async def _write_each(self, group: list[_Item]) -> None:
        for item in group:
            try:
                async with self._bound(item.tenant_id) as conn:
                    result = await write_one(conn, item.tenant_id, item.doc)
            except Exception as exc:
                self._fail([item], exc)
            else:
                self._done(item, result)

    def _done(self, item: _Item, result: Written) -> None:
        # Committed: the job is delivered even if its client has gone.
        self.on_written(result)
        if not item.future.done():
            item.future.set_result(result)

    @staticmethod
    def _fail(group: list[_Item], exc: Exception) -> None:
        for item in group:
            if not item.future.done():
                item.future.set_exception(exc)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        while self._held:
            await self.pool.release(self._held.pop()[0])
