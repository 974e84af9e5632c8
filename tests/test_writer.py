"""Single posts that arrive together are coalesced into one statement, with single-post rules."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import pytest
from arq.connections import ArqRedis

from api import writer
from shared.constants import QUEUE_NAME
from shared.schemas import DocumentIn
from tests.conftest import Tenant
from tests.support import eventually


@pytest.fixture
async def writers(app_pool: asyncpg.Pool) -> AsyncIterator[Callable[..., writer.IngestWriter]]:
    """Writers on the app pool, closed after the test: they hold connections between statements."""
    made: list[writer.IngestWriter] = []

    def make(on_written: Callable[[writer.Written], None], **options: int) -> writer.IngestWriter:
        made.append(writer.IngestWriter(app_pool, on_written, **options))
        return made[-1]

    yield make
    for w in made:
        await w.close()


async def test_concurrent_posts_are_each_committed_answered_and_enqueued(
    tenant: Tenant, other_tenant: Tenant, pool: asyncpg.Pool, redis: ArqRedis
) -> None:
    posts = [
        t.post("/v1/documents", {"content": f"doc {i}"}) for i in range(30) for t in (tenant, other_tenant)
    ]
    responses = await asyncio.gather(*posts)

    assert {r.status_code for r in responses} == {202}
    bodies = [r.json() for r in responses]
    assert len({b["document_id"] for b in bodies}) == 60
    for owner in (tenant, other_tenant):
        assert await pool.fetchval("SELECT count(*) FROM documents WHERE tenant_id = $1", owner.id) == 30
    for body in bodies:
        await eventually(
            lambda b=body: redis.zscore(QUEUE_NAME, b["job_id"]), lambda s: s is not None, what="enqueued"
        )


async def test_concurrent_posts_of_one_external_id_become_successive_versions(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    posts = [tenant.post("/v1/documents", {"content": f"v{i}", "external_id": "same"}) for i in range(8)]
    bodies = [r.json() for r in await asyncio.gather(*posts)]

    assert len({b["document_id"] for b in bodies}) == 1
    assert len({b["job_id"] for b in bodies}) == 1  # all joined the one queued job
    document_id = uuid.UUID(bodies[0]["document_id"])
    row = await pool.fetchrow(
        "SELECT d.version, j.document_version FROM documents d JOIN index_jobs j ON j.document_id = d.id"
        " WHERE d.id = $1",
        document_id,
    )
    assert tuple(row) == (8, 8)


async def test_a_single_post_with_an_idempotency_key_replays_and_writes_nothing(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    first = await tenant.post("/v1/documents", {"content": "once"}, **{"Idempotency-Key": "k-1"})
    again = await tenant.post("/v1/documents", {"content": "once"}, **{"Idempotency-Key": "k-1"})
    other = await tenant.post("/v1/documents", {"content": "other"}, **{"Idempotency-Key": "k-1"})

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert other.status_code == 409
    assert await pool.fetchval("SELECT count(*) FROM documents WHERE tenant_id = $1", tenant.id) == 1


async def test_a_failing_group_is_written_again_one_by_one_so_only_the_bad_one_fails(
    monkeypatch: pytest.MonkeyPatch,
    writers: Callable[..., writer.IngestWriter],
) -> None:
    calls: list[int] = []

    async def write_many(pool: object, tenant_ids: list, docs: list) -> list:
        calls.append(len(docs))
        if any(d.content == "bad" for d in docs):
            raise ValueError("bad document")
        return [writer.Written(t, uuid.uuid4(), uuid.uuid4()) for t in tenant_ids]

    monkeypatch.setattr(writer, "write_many", write_many)
    written: list[writer.Written] = []
    w = writers(written.append, max_batch=10, max_in_flight=1)
    tenant_id = uuid.uuid4()

    results = await asyncio.gather(
        *(w.write(tenant_id, DocumentIn(content=c)) for c in ("a", "bad", "c")), return_exceptions=True
    )

    assert isinstance(results[1], ValueError)
    assert all(isinstance(r, writer.Written) for r in (results[0], results[2]))
    assert len(written) == 2  # each committed document is handed to the enqueuer
    assert calls == [3, 1, 1, 1]  # the group, then each document alone


async def test_a_group_failing_because_postgres_is_away_fails_every_request(
    monkeypatch: pytest.MonkeyPatch,
    writers: Callable[..., writer.IngestWriter],
) -> None:
    async def write_many(pool: object, tenant_ids: list, docs: list) -> list:
        raise ConnectionRefusedError("PostgreSQL is away")

    monkeypatch.setattr(writer, "write_many", write_many)
    w = writers(lambda _: None, max_batch=10, max_in_flight=1)

    results = await asyncio.gather(
        *(w.write(uuid.uuid4(), DocumentIn(content="x")) for _ in range(3)), return_exceptions=True
    )

    assert all(isinstance(r, ConnectionRefusedError) for r in results)


async def test_each_statement_writes_one_tenant_and_keeps_each_tenants_order(
    monkeypatch: pytest.MonkeyPatch,
    writers: Callable[..., writer.IngestWriter],
) -> None:
    statements: list[list[tuple[uuid.UUID, str]]] = []

    async def write_many(pool: object, tenant_ids: list, docs: list) -> list:
        statements.append([(t, d.content) for t, d in zip(tenant_ids, docs, strict=True)])
        return [writer.Written(t, uuid.uuid4(), uuid.uuid4()) for t in tenant_ids]

    monkeypatch.setattr(writer, "write_many", write_many)
    w = writers(lambda _: None, max_batch=10, max_in_flight=1)
    a, b = uuid.uuid4(), uuid.uuid4()
    posts = [
        (a, "a1", None),
        (b, "b1", None),
        (a, "a2", "x"),
        (b, "b2", None),
        (a, "a3", "x"),
        (a, "a4", None),
    ]

    await asyncio.gather(*(w.write(t, DocumentIn(content=c, external_id=e)) for t, c, e in posts))

    assert all(len({t for t, _ in s}) == 1 for s in statements)
    order = {t: [c for s in statements for tt, c in s if tt == t] for t in (a, b)}
    assert order == {a: ["a1", "a2", "a3", "a4"], b: ["b1", "b2"]}
    # a3 repeats a2's external_id: it (and a4 after it) went in a later statement than a2.
    first_with = {c: i for i, s in enumerate(statements) for _, c in s}
    assert first_with["a3"] > first_with["a2"]
