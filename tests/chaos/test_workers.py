"""Worker processes dying mid-job, and several workers with the reconciler beside them."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from shared.queue import create_redis
from tests.chaos.support import Chaos, all_finished, assert_invariants, busy, documents_held, post_documents
from worker.reconciler import reconcile_once

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]


async def test_sigkilled_worker_jobs_are_taken_back_and_indexed_by_a_new_worker(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    docs = await post_documents(tenant, 300)
    held = [d["document_id"] for d in docs[::3]]

    async with documents_held(lab.pool, held):
        doomed = lab.start_worker()
        in_flight = await busy(lab.pool, held)
        doomed.kill()
    successor = lab.start_worker()

    assert await all_finished(lab.pool, tenant) == {"indexed": 300}
    attempts = await lab.pool.fetch(
        "SELECT attempts FROM index_jobs WHERE id = ANY($1::uuid[])", list(in_flight)
    )
    # The killed attempt counted; the next one indexed the document.
    assert {r["attempts"] for r in attempts} == {2}
    assert "reconciled" in successor.text()
    await assert_invariants(lab.pool)


async def test_two_workers_and_reconcilers_with_reposts_index_each_latest_version_once(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    lab.start_worker()
    lab.start_worker()
    stop = asyncio.Event()
    redis = create_redis(lab.settings)

    async def reconcile_beside() -> None:
        # A third reconciler, racing the workers' own for the lock and the live queue.
        while not stop.is_set():
            await reconcile_once(lab.pool, redis, lab.settings)
            await asyncio.sleep(0.05)

    beside = asyncio.create_task(reconcile_beside())
    documents, rounds = 40, 5
    try:
        for version in range(1, rounds + 1):
            order = list(range(documents))
            secrets.SystemRandom().shuffle(order)
            answers = await asyncio.gather(
                *(
                    tenant.post("/v1/documents", {"content": f"v{version} of {i}", "external_id": f"ext-{i}"})
                    for i in order
                )
            )
            assert {a.status_code for a in answers} == {202}
        await all_finished(lab.pool, tenant)
    finally:
        stop.set()
        await beside
        await redis.aclose()

    rows = await lab.pool.fetch(
        "SELECT version, indexed_version FROM documents WHERE tenant_id = $1", tenant.id
    )
    assert len(rows) == documents
    assert {(r["version"], r["indexed_version"]) for r in rows} == {(rounds, rounds)}
    await assert_invariants(lab.pool)
