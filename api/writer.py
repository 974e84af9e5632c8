"""Coalesced writes: single POSTs that arrive together are written by one set-based statement.

At 64 concurrent clients, one statement and commit per document leaves PostgreSQL doing per-
statement work far more often than row work; the ceiling-B bench measures that limit near 2,000
documents/s on two cores. Concurrent posts are therefore grouped (shared/batching.py) and written
with ``ingest_documents``, the batch endpoint's statement. Each request is still answered only after
its rows are committed; a group that fails is written again one document per statement, so one bad
document fails only its own request.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg
import msgspec

from shared.batching import HeldConnections, TenantBatcher
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


class IngestWriter:
    """Coalesces single posts (see shared/batching.py): one tenant's documents per statement, each
    external_id at most once, so two posts of one external_id become two versions in arrival order."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        on_written: Callable[[Written], None],
        *,
        max_batch: int,
        max_in_flight: int,
    ) -> None:
        self._connections = HeldConnections(pool)
        self._batcher: TenantBatcher[tuple[uuid.UUID, DocumentIn], Written] = TenantBatcher(
            self._write_group,
            self._connections.bound,
            max_batch=max_batch,
            max_in_flight=max_in_flight,
            key=lambda item: item[1].external_id,
            # Committed: the job is delivered even if its client has gone.
            on_done=lambda _, written: on_written(written),
        )

    async def write(self, tenant_id: uuid.UUID, doc: DocumentIn) -> Written:
        return await self._batcher.submit(tenant_id, (tenant_id, doc))

    @staticmethod
    async def _write_group(
        conn: asyncpg.Connection, items: list[tuple[uuid.UUID, DocumentIn]]
    ) -> list[Written]:
        return await write_many(conn, [t for t, _ in items], [d for _, d in items])

    async def close(self) -> None:
        await self._batcher.drain()
        await self._connections.close()
