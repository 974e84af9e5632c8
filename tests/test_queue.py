"""The pipelined enqueue writes what arq's enqueue_job writes, and a real arq worker runs it."""

from __future__ import annotations

import uuid

import asyncpg
import msgspec
import pytest
from arq.connections import ArqRedis
from arq.constants import job_key_prefix

from shared.constants import QUEUE_NAME
from shared.queue import deserialize, enqueue_index_job, enqueue_index_jobs, wire_payload
from shared.schemas import IndexJobPayload
from tests.conftest import Tenant
from tests.support import eventually


def payload() -> IndexJobPayload:
    return IndexJobPayload(tenant_id=uuid.uuid4(), document_id=uuid.uuid4(), job_id=uuid.uuid4())


async def test_writes_the_same_keys_values_and_expiry_as_arq(redis: ArqRedis) -> None:
    theirs, ours = payload(), payload()
    assert await enqueue_index_job(redis, theirs)
    assert await enqueue_index_jobs(redis, [ours]) == [True]

    stored = {}
    for p in (theirs, ours):
        key = job_key_prefix + str(p.job_id)
        job = deserialize(await redis.get(key))
        stored[p] = job
        assert 86_000_000 < await redis.pttl(key) <= 86_400_000
        assert await redis.zscore(QUEUE_NAME, str(p.job_id)) == job["et"]
    a, b = stored[theirs], stored[ours]
    assert a.keys() == b.keys()
    assert (a["f"], a["t"], a["k"]) == (b["f"], b["t"], b["k"])
    assert b["a"] == [{"tenant_id": str(ours.tenant_id), "document_id": str(ours.document_id),
                       "job_id": str(ours.job_id), "v": 1}]  # fmt: skip


async def test_an_id_already_held_is_skipped_like_arq_does(redis: ArqRedis) -> None:
    held, fresh = payload(), payload()
    assert await enqueue_index_job(redis, held)
    score = await redis.zscore(QUEUE_NAME, str(held.job_id))

    assert await enqueue_index_jobs(redis, [held, fresh, fresh]) == [False, True, False]
    assert await redis.zscore(QUEUE_NAME, str(held.job_id)) == score
    assert not await enqueue_index_job(redis, fresh)  # and arq sees ours as held
    assert await enqueue_index_jobs(redis, []) == []


async def test_an_arq_worker_runs_pipelined_jobs(
    tenant: Tenant, worker: None, pool: asyncpg.Pool, redis: ArqRedis
) -> None:
    # Rows written directly, enqueued by the pipelined path only.
    jobs = []
    for i in range(20):
        document_id, job_id = uuid.uuid4(), uuid.uuid4()
        await pool.execute(
            "INSERT INTO documents (id, tenant_id, content) VALUES ($1, $2, $3)",
            document_id,
            tenant.id,
            f"d{i}",
        )
        await pool.execute(
            "INSERT INTO index_jobs (id, tenant_id, document_id, document_version) VALUES ($1, $2, $3, 1)",
            job_id,
            tenant.id,
            document_id,
        )
        jobs.append(IndexJobPayload(tenant_id=tenant.id, document_id=document_id, job_id=job_id))

    assert all(await enqueue_index_jobs(redis, jobs))

    job_ids = [j.job_id for j in jobs]
    await eventually(
        lambda: pool.fetchval(
            "SELECT count(*) FROM index_jobs WHERE id = ANY($1) AND status = 'indexed'", job_ids
        ),
        lambda n: n == 20,
        what="all indexed",
    )
    await eventually(lambda: redis.zcard(QUEUE_NAME), lambda n: n == 0, what="queue empty")


async def test_single_posts_reach_redis_through_the_background_enqueuer(
    tenant: Tenant, redis: ArqRedis
) -> None:
    answers = [(await tenant.post("/v1/documents", {"content": f"c{i}"})).json() for i in range(5)]

    for answer in answers:
        await eventually(
            lambda a=answer: redis.zscore(QUEUE_NAME, a["job_id"]), lambda s: s is not None, what="enqueued"
        )


def test_a_malformed_payload_is_refused_before_it_reaches_redis() -> None:
    bad = IndexJobPayload(tenant_id="not-a-uuid", document_id=uuid.uuid4(), job_id=uuid.uuid4())  # type: ignore[arg-type]
    with pytest.raises(msgspec.ValidationError):
        wire_payload(bad)
