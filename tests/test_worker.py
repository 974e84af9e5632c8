"""The worker's moves: retries with backoff, final failure, duplicate and late deliveries, re-drive."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import msgspec
import pytest
from arq.connections import ArqRedis

from shared.constants import QUEUE_NAME
from shared.queue import create_redis, enqueue_index_job
from shared.schemas import IndexJobPayload
from shared.settings import Settings
from tests.conftest import Tenant
from tests.support import eventually
from worker import jobs, pipeline
from worker.context import CTX_KEY, WorkerContext
from worker.main import _stop_gracefully
from worker.settings import build_worker


def _payload(tenant: Tenant, posted: dict) -> IndexJobPayload:
    return IndexJobPayload(
        tenant_id=tenant.id, document_id=uuid.UUID(posted["document_id"]), job_id=uuid.UUID(posted["job_id"])
    )


def _ctx(settings: Settings, pool: asyncpg.Pool) -> dict:
    return {CTX_KEY: WorkerContext(settings=settings, pool=pool), "job_id": "test"}


async def _queue_drained(redis: ArqRedis) -> None:
    await eventually(lambda: redis.zcard(QUEUE_NAME), lambda n: n == 0, what="arq queue drained")


@pytest.fixture
def failing_step(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def explode(source: pipeline.Source, config: str) -> pipeline.IndexEntry:
        calls.append(source.version)
        raise RuntimeError("extractor exploded")

    monkeypatch.setattr(pipeline, "run", explode)
    return calls


async def test_failing_step_is_retried_with_backoff_then_failed_with_its_error(
    tenant: Tenant, failing_step: list[int], worker: None, settings: Settings
) -> None:
    posted = (await tenant.post("/v1/documents", {"content": "doomed"})).json()

    job = await eventually(lambda: tenant.job(posted["job_id"]), lambda j: j["status"] == "failed")

    assert job["attempts"] == settings.job_max_attempts == 3
    assert job["error"] == "RuntimeError: extractor exploded"
    assert job["finished_at"] is not None
    assert len(failing_step) == 3
    doc = (await tenant.get(f"/v1/documents/{posted['document_id']}")).json()
    assert doc["status"] == "failed"
    assert doc["indexed_at"] is None


def test_backoff_doubles_from_the_base() -> None:
    assert [jobs.backoff_s(1.0, attempt) for attempt in (1, 2, 3)] == [1.0, 2.0, 4.0]


async def test_permanent_error_fails_at_once_without_retry(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, worker: None
) -> None:
    def unusable(source: pipeline.Source, config: str) -> pipeline.IndexEntry:
        raise pipeline.PermanentError("content is not text")

    monkeypatch.setattr(pipeline, "run", unusable)
    posted = (await tenant.post("/v1/documents", {"content": "junk"})).json()

    job = await eventually(lambda: tenant.job(posted["job_id"]), lambda j: j["status"] == "failed")

    assert job["attempts"] == 1
    assert job["error"] == "PermanentError: content is not text"


async def test_two_deliveries_of_one_job_index_it_once(
    tenant: Tenant, settings: Settings, app_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[int] = []
    real_run = pipeline.run

    def counting(source: pipeline.Source, config: str) -> pipeline.IndexEntry:
        runs.append(source.version)
        return real_run(source, config)

    monkeypatch.setattr(pipeline, "run", counting)
    posted = (await tenant.post("/v1/documents", {"content": "twice delivered"})).json()
    payload = msgspec.to_builtins(_payload(tenant, posted))

    await asyncio.gather(
        jobs.index_document(_ctx(settings, app_pool), payload),
        jobs.index_document(_ctx(settings, app_pool), payload),
    )

    job = await tenant.job(posted["job_id"])
    assert job["status"] == "indexed"
    assert job["attempts"] == 1
    assert runs == [1]


async def test_late_delivery_after_indexed_changes_nothing(
    tenant: Tenant, worker: None, redis: ArqRedis
) -> None:
    posted = (await tenant.post("/v1/documents", {"content": "done already"})).json()
    before = await eventually(lambda: tenant.job(posted["job_id"]), lambda j: j["status"] == "indexed")
    await _queue_drained(redis)

    assert await enqueue_index_job(redis, _payload(tenant, posted))  # arq kept nothing: it delivers again
    await _queue_drained(redis)

    assert await tenant.job(posted["job_id"]) == before


async def test_second_enqueue_of_a_waiting_job_is_a_no_op(tenant: Tenant, redis: ArqRedis) -> None:
    posted = (await tenant.post("/v1/documents", {"content": "waiting"})).json()
    # The API enqueues in the background, just after its 202.
    await eventually(lambda: redis.zscore(QUEUE_NAME, posted["job_id"]), lambda s: s is not None)

    assert await enqueue_index_job(redis, _payload(tenant, posted)) is False
    assert await redis.zcard(QUEUE_NAME) == 1


async def test_invalid_payload_is_dropped_without_retry(settings: Settings, app_pool: asyncpg.Pool) -> None:
    assert await jobs.index_document(_ctx(settings, app_pool), {"tenant_id": "nope"}) is None


async def test_failed_job_can_be_retried_as_a_new_job(
    tenant: Tenant, worker: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = pipeline.run

    def unusable(source: pipeline.Source, config: str) -> pipeline.IndexEntry:
        raise pipeline.PermanentError("not today")

    monkeypatch.setattr(pipeline, "run", unusable)
    posted = (await tenant.post("/v1/documents", {"content": "second chance"})).json()
    await eventually(lambda: tenant.job(posted["job_id"]), lambda j: j["status"] == "failed")
    monkeypatch.setattr(pipeline, "run", real_run)

    response = await tenant.post(f"/v1/index-jobs/{posted['job_id']}/retry", {})

    assert response.status_code == 202
    retried = response.json()
    assert retried["document_id"] == posted["document_id"]
    assert retried["job_id"] != posted["job_id"]
    assert response.headers["location"] == retried["status_url"]
    await eventually(lambda: tenant.job(retried["job_id"]), lambda j: j["status"] == "indexed")
    old = await tenant.job(posted["job_id"])
    assert old["status"] == "failed"
    assert old["error"] == "PermanentError: not today"


async def test_only_failed_jobs_can_be_retried(tenant: Tenant, other_tenant: Tenant) -> None:
    posted = (await tenant.post("/v1/documents", {"content": "queued still"})).json()

    conflict = await tenant.post(f"/v1/index-jobs/{posted['job_id']}/retry", {})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "conflict"
    hidden = await other_tenant.post(f"/v1/index-jobs/{posted['job_id']}/retry", {})
    assert hidden.status_code == 404


async def test_an_attempt_past_the_job_timeout_fails_and_is_retried_not_handed_back(
    tenant: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    app_pool: asyncpg.Pool,
    redis: ArqRedis,
) -> None:
    async def too_slow(source: pipeline.Source, config: str) -> pipeline.IndexEntry:
        await asyncio.Event().wait()  # never finishes on its own
        raise AssertionError("unreachable")

    monkeypatch.setattr(pipeline, "prepare", too_slow)
    quick = msgspec.structs.replace(settings, job_timeout_s=0.05, job_max_attempts=2)
    w = build_worker(quick, WorkerContext(settings=quick, pool=app_pool), create_redis(quick))
    run = asyncio.create_task(w.async_run())
    try:
        posted = (await tenant.post("/v1/documents", {"content": "slow"})).json()
        job = await eventually(lambda: tenant.job(posted["job_id"]), lambda j: j["status"] == "failed")
    finally:
        await _stop_gracefully(w, run, grace_s=1.0)

    assert job["attempts"] == 2
    assert job["error"] == "JobTimedOut: the attempt took longer than 0.05 s"
