"""Job moves under out-of-order and duplicate deliveries: the index never goes back a version."""

from __future__ import annotations

import asyncio

import asyncpg

from api.writer import write_one
from shared.schemas import DocumentIn, IndexJobPayload
from tests.conftest import Tenant
from tests.support import eventually, on_connection
from worker import pipeline, transitions


async def _post(pool: asyncpg.Pool, tenant: Tenant, external_id: str, content: str) -> IndexJobPayload:
    doc = DocumentIn(content=content, external_id=external_id)
    return (await on_connection(pool, write_one, tenant.id, doc)).payload()


async def test_an_older_version_finishing_last_never_overwrites_the_newer_index(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    first = await _post(pool, tenant, "doc", "version one")
    claimed_first = await on_connection(pool, transitions.claim, first, 60.0)
    assert claimed_first is not None
    second = await _post(pool, tenant, "doc", "version two")  # a new job: the first is processing
    claimed_second = await on_connection(pool, transitions.claim, second, 60.0)
    assert claimed_second is not None
    assert (claimed_first[1].version, claimed_second[1].version) == (1, 2)

    # Version 2 is indexed first; version 1's delivery arrives late.
    assert await on_connection(
        pool,
        transitions.complete,
        second.job_id,
        claimed_second[0],
        pipeline.run(claimed_second[1], "english"),
    )
    assert await on_connection(
        pool, transitions.complete, first.job_id, claimed_first[0], pipeline.run(claimed_first[1], "english")
    )

    doc = await pool.fetchrow(
        "SELECT version, indexed_version FROM documents WHERE id = $1", first.document_id
    )
    assert (doc["version"], doc["indexed_version"]) == (2, 2)


async def test_a_duplicate_delivery_of_a_finished_job_changes_nothing(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    payload = await _post(pool, tenant, "dup", "once")
    claimed = await on_connection(pool, transitions.claim, payload, 60.0)
    assert claimed is not None
    assert await on_connection(
        pool, transitions.complete, payload.job_id, claimed[0], pipeline.run(claimed[1], "english")
    )
    before = await pool.fetchrow("SELECT * FROM index_jobs WHERE id = $1", payload.job_id)

    assert await on_connection(pool, transitions.claim, payload, 60.0) is None

    assert await pool.fetchrow("SELECT * FROM index_jobs WHERE id = $1", payload.job_id) == before


async def test_a_claim_racing_a_repost_that_joins_its_job_indexes_the_reposted_version(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    first = await _post(pool, tenant, "raced", "version one")
    async with pool.acquire() as reposter:
        tx = reposter.transaction()
        await tx.start()
        # The re-post joins the queued job (version 2) and holds its row until it commits.
        joined = await write_one(reposter, tenant.id, DocumentIn(content="version two", external_id="raced"))
        assert joined.job_id == first.job_id
        claim = asyncio.create_task(on_connection(pool, transitions.claim, first, 60.0))
        await eventually(
            lambda: pool.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND query LIKE '%index_jobs%'"
            ),
            lambda n: n >= 1,
            what="the claim waiting for the re-post's lock",
        )
        await tx.commit()
        claimed = await claim

    assert claimed is not None
    assert claimed[1].version == 2
    assert claimed[1].content == "version two"
