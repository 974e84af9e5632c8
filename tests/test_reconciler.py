"""The reconciler against real PostgreSQL and Redis: each fault it repairs, built as its rows and
keys look after that fault (a lost enqueue, a dead worker), then one pass."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import asyncpg
import msgspec
import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.utils import timestamp_ms

from api.writer import write_one
from shared.constants import QUEUE_NAME, RECONCILER_LOCK_KEY
from shared.schemas import DocumentIn, IndexJobPayload
from shared.settings import Settings
from tests.conftest import Tenant
from tests.support import eventually, on_connection
from worker import pipeline, transitions
from worker.context import WorkerContext
from worker.reconciler import reconcile_once
from worker.settings import in_progress_timeout_s

#: A claimed job whose lease runs out at once: its worker "died" right after claiming it.
INSTANT_LEASE_S = 0.000001


@pytest.fixture
def now_settings(settings: Settings) -> Settings:
    """Queued jobs are checked at once, however fresh."""
    return msgspec.structs.replace(settings, reconcile_queued_grace_s=0.0)


async def _committed_not_enqueued(
    pool: asyncpg.Pool, tenant: Tenant, external_id: str | None = None
) -> IndexJobPayload:
    """A document and its queued job, committed, never enqueued: the API died between the two."""
    doc = DocumentIn(content="some text", external_id=external_id)
    return (await on_connection(pool, write_one, tenant.id, doc)).payload()


async def _claimed_by_dead_worker(pool: asyncpg.Pool, redis: ArqRedis, payload: IndexJobPayload) -> int:
    """The job claimed by a worker that was then SIGKILLed: processing with a lapsed lease, and
    arq's in-progress marker left behind as arq sets it when a delivery starts."""
    claimed = await on_connection(pool, transitions.claim, payload, INSTANT_LEASE_S)
    assert claimed is not None
    await redis.enqueue_job("index_document", msgspec.to_builtins(payload), _job_id=str(payload.job_id))
    await redis.psetex(in_progress_key_prefix + str(payload.job_id), 340_000, b"1")
    return claimed[0]


async def _job(pool: asyncpg.Pool, job_id: uuid.UUID) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM index_jobs WHERE id = $1", job_id)
    assert row is not None
    return row


async def test_queued_job_that_redis_never_got_is_enqueued_once(
    tenant: Tenant, pool: asyncpg.Pool, redis: ArqRedis, now_settings: Settings
) -> None:
    payload = await _committed_not_enqueued(pool, tenant)

    first = await reconcile_once(pool, redis, now_settings)
    second = await reconcile_once(pool, redis, now_settings)

    assert first is not None
    assert first.enqueued >= 1
    assert await redis.exists(job_key_prefix + str(payload.job_id))
    assert await redis.zscore(QUEUE_NAME, str(payload.job_id)) is not None
    assert second is not None
    assert second.enqueued == 0
    assert await redis.zcard(QUEUE_NAME) == first.enqueued


async def test_fresh_queued_job_is_left_to_the_api_within_the_grace(
    tenant: Tenant, pool: asyncpg.Pool, redis: ArqRedis, settings: Settings
) -> None:
    slow = msgspec.structs.replace(settings, reconcile_queued_grace_s=3600.0)
    payload = await _committed_not_enqueued(pool, tenant)

    summary = await reconcile_once(pool, redis, slow)

    assert summary is not None
    assert not await redis.exists(job_key_prefix + str(payload.job_id))


async def test_dead_workers_job_is_requeued_counting_the_attempt_and_released_in_redis(
    tenant: Tenant, pool: asyncpg.Pool, redis: ArqRedis, settings: Settings
) -> None:
    payload = await _committed_not_enqueued(pool, tenant)
    attempt = await _claimed_by_dead_worker(pool, redis, payload)

    summary = await reconcile_once(pool, redis, settings)

    assert summary is not None
    assert summary.requeued >= 1
    assert summary.released >= 1
    job = await _job(pool, payload.job_id)
    assert job["status"] == "queued"
    assert job["attempts"] == attempt == 1
    assert job["lease_expires_at"] is None
    assert "attempt 1 of 3 was lost" in job["error"]
    job_id = str(payload.job_id)
    assert not await redis.exists(in_progress_key_prefix + job_id)
    assert await redis.zscore(QUEUE_NAME, job_id) <= timestamp_ms()


async def test_live_delivery_just_starting_is_not_released(
    tenant: Tenant, pool: asyncpg.Pool, redis: ArqRedis, settings: Settings
) -> None:
    patient = msgspec.structs.replace(settings, reconcile_queued_grace_s=60.0)
    payload = await _committed_not_enqueued(pool, tenant)
    job_id = str(payload.job_id)
    await redis.enqueue_job("index_document", msgspec.to_builtins(payload), _job_id=job_id)
    # Queued long ago, and a worker set this marker a moment ago: it is about to claim the row.
    await pool.execute(
        "UPDATE index_jobs SET updated_at = now() - interval '1 hour' WHERE id = $1", payload.job_id
    )
    marker_ms = int(in_progress_timeout_s(settings) * 1000)
    await redis.psetex(in_progress_key_prefix + job_id, marker_ms, b"1")

    summary = await reconcile_once(pool, redis, patient)

    assert summary is not None
    assert await redis.exists(in_progress_key_prefix + job_id)
    assert summary.released == 0


async def test_lease_lost_on_the_last_attempt_fails_the_job_and_retry_redrives_it(
    tenant: Tenant, pool: asyncpg.Pool, redis: ArqRedis, settings: Settings, worker: None
) -> None:
    payload = await _committed_not_enqueued(pool, tenant)
    # Two attempts spent before this one.
    await pool.execute("UPDATE index_jobs SET attempts = $2 WHERE id = $1", payload.job_id, 2)
    await _claimed_by_dead_worker(pool, redis, payload)

    summary = await reconcile_once(pool, redis, settings)

    assert summary is not None
    assert summary.failed >= 1
    failed = await tenant.job(payload.job_id)
    assert failed["status"] == "failed"
    assert failed["attempts"] == 3
    assert "no attempts left" in failed["error"]
    response = await tenant.post(f"/v1/index-jobs/{payload.job_id}/retry", {})
    assert response.status_code == 202, response.text
    retried = response.json()["job_id"]
    job = await eventually(lambda: tenant.job(retried), lambda j: j["status"] == "indexed", what="indexed")
    assert job["attempts"] == 1
    assert (await tenant.job(payload.job_id))["status"] == "failed"  # failed jobs never move


async def test_lost_job_superseded_by_a_newer_queued_job_ends_failed(
    tenant: Tenant, pool: asyncpg.Pool, redis: ArqRedis, now_settings: Settings
) -> None:
    old = await _committed_not_enqueued(pool, tenant, external_id="doc-1")
    await _claimed_by_dead_worker(pool, redis, old)
    newer = await _committed_not_enqueued(pool, tenant, external_id="doc-1")
    assert newer.job_id != old.job_id

    summary = await reconcile_once(pool, redis, now_settings)

    assert summary is not None
    assert summary.superseded >= 1
    job = await _job(pool, old.job_id)
    assert job["status"] == "failed"
    assert "a newer job is queued" in job["error"]
    assert (await _job(pool, newer.job_id))["status"] == "queued"
    assert await redis.exists(job_key_prefix + str(newer.job_id))


async def test_a_second_reconciler_skips_its_pass_while_one_runs(
    tenant: Tenant, pool: asyncpg.Pool, redis: ArqRedis, now_settings: Settings
) -> None:
    payload = await _committed_not_enqueued(pool, tenant)
    async with pool.acquire() as other:
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", RECONCILER_LOCK_KEY)
        try:
            skipped = await reconcile_once(pool, redis, now_settings)
        finally:
            await other.fetchval("SELECT pg_advisory_unlock($1)", RECONCILER_LOCK_KEY)

    assert skipped is None
    assert not await redis.exists(job_key_prefix + str(payload.job_id))
    assert await reconcile_once(pool, redis, now_settings) is not None


async def test_dry_run_counts_and_changes_nothing(
    tenant: Tenant, pool: asyncpg.Pool, redis: ArqRedis, now_settings: Settings
) -> None:
    queued = await _committed_not_enqueued(pool, tenant)
    lost = await _committed_not_enqueued(pool, tenant)
    await _claimed_by_dead_worker(pool, redis, lost)
    keys_before = sorted(await redis.keys("*"))

    summary = await reconcile_once(pool, redis, now_settings, dry_run=True)

    assert summary is not None
    assert summary.dry_run
    assert summary.requeued >= 1
    assert summary.enqueued >= 1
    assert sorted(await redis.keys("*")) == keys_before
    assert (await _job(pool, queued.job_id))["status"] == "queued"
    assert (await _job(pool, lost.job_id))["status"] == "processing"


def _searchhub(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEARCHHUB_")}
    env |= {
        "SEARCHHUB_DATABASE_URL": settings.database_url or "",
        "SEARCHHUB_REDIS_URL": settings.redis_url or "",
        "SEARCHHUB_RECONCILE_QUEUED_GRACE_S": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "searchhub", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_cli_reconcile_prints_what_it_did_and_dry_run_does_nothing(
    tenant: Tenant, pool: asyncpg.Pool, redis: ArqRedis, settings: Settings
) -> None:
    payload = await _committed_not_enqueued(pool, tenant)

    dry = _searchhub(settings, "reconcile", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run, nothing changed" in dry.stdout
    assert not await redis.exists(job_key_prefix + str(payload.job_id))

    done = _searchhub(settings, "reconcile")
    assert done.returncode == 0, done.stderr
    assert "enqueued" in done.stdout
    assert await redis.exists(job_key_prefix + str(payload.job_id))


async def test_worker_whose_job_was_taken_back_cannot_overwrite_the_newer_state(
    tenant: Tenant, pool: asyncpg.Pool, redis: ArqRedis, settings: Settings
) -> None:
    payload = await _committed_not_enqueued(pool, tenant)
    claimed = await on_connection(pool, transitions.claim, payload, INSTANT_LEASE_S)
    assert claimed is not None
    stale_attempt, source = claimed
    await reconcile_once(pool, redis, settings)
    # Another worker has it now.
    fresh = await on_connection(pool, transitions.claim, payload, 60.0)
    assert fresh is not None
    entry = pipeline.run(source, settings.search_config)

    assert not await on_connection(pool, transitions.renew, payload.job_id, stale_attempt, 60.0)
    assert not await on_connection(pool, transitions.complete, payload.job_id, stale_attempt, entry)
    assert not await on_connection(pool, transitions.fail, payload.job_id, stale_attempt, "late failure")
    stale_requeue = await on_connection(
        pool, transitions.requeue, payload.job_id, stale_attempt, "late", give_back=False
    )
    assert stale_requeue is transitions.Requeue.LOST
    job = await _job(pool, payload.job_id)
    assert job["status"] == "processing"
    assert job["attempts"] == fresh[0] == 2
    assert await on_connection(pool, transitions.complete, payload.job_id, fresh[0], entry)
    assert (await _job(pool, payload.job_id))["status"] == "indexed"


async def test_a_long_job_renews_its_lease_and_is_not_taken_back(
    tenant: Tenant, pool: asyncpg.Pool, redis: ArqRedis, settings: Settings
) -> None:
    payload = await _committed_not_enqueued(pool, tenant)
    claimed = await on_connection(pool, transitions.claim, payload, settings.processing_lease_s)
    assert claimed is not None
    first_expiry = (await _job(pool, payload.job_id))["lease_expires_at"]
    app = WorkerContext(settings=settings, pool=pool)

    with app.leases.held(payload.tenant_id, payload.job_id, claimed[0]):  # the work outlasts a lease
        await eventually(
            lambda: pool.fetchval("SELECT now() > $1", first_expiry),
            bool,
            timeout_s=settings.processing_lease_s * 5,
            what="the first lease over",
        )
        await reconcile_once(pool, redis, settings)
        job = await _job(pool, payload.job_id)

    assert job["status"] == "processing"
    assert job["attempts"] == claimed[0]
    assert job["lease_expires_at"] > first_expiry


async def test_pass_forgets_idempotency_keys_past_their_ttl(
    tenant: Tenant, pool: asyncpg.Pool, redis: ArqRedis, settings: Settings
) -> None:
    await tenant.post("/v1/documents", {"content": "old"}, **{"Idempotency-Key": "old-key"})
    await tenant.post("/v1/documents", {"content": "new"}, **{"Idempotency-Key": "new-key"})
    await pool.execute(
        "UPDATE idempotency_keys SET created_at = now() - make_interval(secs => $2 + 60)"
        " WHERE tenant_id = $1 AND key = 'old-key'",
        tenant.id,
        float(settings.idempotency_ttl_s),
    )

    summary = await reconcile_once(pool, redis, settings)

    assert summary is not None
    assert summary.expired_keys >= 1
    kept = await pool.fetch("SELECT key FROM idempotency_keys WHERE tenant_id = $1", tenant.id)
    assert [r["key"] for r in kept] == ["new-key"]
