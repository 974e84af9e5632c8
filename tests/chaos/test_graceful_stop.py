"""SIGTERM to a worker and to the API: work in flight is finished or handed back."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from searchhub.embedded import free_port
from tests.chaos.support import (
    Chaos,
    all_finished,
    assert_invariants,
    busy,
    documents_held,
    post_documents,
    spawn,
    statuses,
)
from tests.support import eventually

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]


async def test_sigterm_hands_in_flight_jobs_back_and_exits(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    docs = await post_documents(tenant, 30)
    held = [d["document_id"] for d in docs]
    async with documents_held(lab.pool, held):
        worker = lab.start_worker()
        await busy(lab.pool, held)
        assert await worker.terminate() == 0
        handed_back = await statuses(lab.pool, tenant)
    assert handed_back == {"queued": 30}
    # Handed back, not spent: a stopping worker is not the job's fault.
    assert (
        await lab.pool.fetchval("SELECT max(attempts) FROM index_jobs WHERE tenant_id = $1", tenant.id) == 0
    )
    lab.start_worker()

    assert await all_finished(lab.pool, tenant) == {"indexed": 30}
    await assert_invariants(lab.pool)


async def _refuses(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    await writer.wait_closed()
    return False


async def test_sigterm_to_the_api_finishes_the_request_in_flight(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    port = free_port()
    env = lab.worker_env() | {"SEARCHHUB_PORT": str(port)}
    log = lab.root / f"api-{port}.log"
    api = spawn("api", env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, headers=tenant.auth, timeout=30) as client:

            async def healthy() -> bool:
                try:
                    return (await client.get("/healthz")).status_code == 200
                except httpx.HTTPError:
                    return False

            await eventually(healthy, bool, timeout_s=60, what="the API up")
            first = await client.post("/v1/documents", json={"content": "v1", "external_id": "slow"})
            assert first.status_code == 202
            async with documents_held(lab.pool, [first.json()["document_id"]]):
                # A re-post waits on the held row: a request in flight.
                in_flight = asyncio.create_task(
                    client.post("/v1/documents", json={"content": "v2", "external_id": "slow"})
                )
                await eventually(
                    lambda: lab.pool.fetchval(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE wait_event_type = 'Lock' AND query LIKE '%INSERT INTO documents%'"
                    ),
                    lambda n: n >= 1,
                    what="the re-post waiting",
                )
                api.send_signal(signal.SIGTERM)
                await eventually(lambda: _refuses(port), bool, what="the API no longer accepting")
            response = await in_flight
        assert response.status_code == 202, response.text
        # uvicorn re-raises the SIGTERM it caught once it has shut down cleanly: the usual status.
        assert await asyncio.to_thread(api.wait, 30) in (0, -signal.SIGTERM)
    finally:
        if api.poll() is None:
            api.kill()
            api.wait()
    lab.start_worker()
    # The re-post joined the job still queued for version 1: one job, which indexes version 2.
    assert await all_finished(lab.pool, tenant) == {"indexed": 1}
    await assert_invariants(lab.pool)
