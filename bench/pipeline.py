"""Pipeline scenarios: 20,000 documents from queued to indexed with 1 and 2 worker processes,
beside ceiling C (a bare arq worker on no-op jobs), and 202 → indexed latency at a steady rate."""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import Any

import asyncpg
import httpx
import msgspec

from bench import harness
from bench.ceilings import enqueue_noops
from bench.harness import Process, Stack
from bench.ingest import documents, one_kb_document, post_batches
from searchhub.embedded import free_port

ENDED = "SELECT count(*) FROM index_jobs WHERE status IN ('indexed', 'failed')"


async def _wait_indexed(database_url: str, n: int, workers: list[Process], timeout_s: float) -> None:
    conn = await asyncpg.connect(database_url)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            done = await conn.fetchval(ENDED)
            if done >= n:
                return
            for w in workers:
                w.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {done} of {n} jobs ended within {timeout_s} s")
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def _analyze(database_url: str) -> None:
    """Statistics for the loaded backlog, as autovacuum keeps them in a running system. Without
    this the workers plan against the statistics of the truncated, empty tables of harness.reset,
    which a running system never has, and their claims read the whole backlog (see
    sql/migrations/0005_grouped_claims.sql)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("ANALYZE documents, index_jobs")
    finally:
        await conn.close()


async def _span(database_url: str) -> tuple[float, int, int]:
    """Seconds from the first job's start to the last one's end, indexed and failed counts."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT extract(epoch FROM max(finished_at) - min(started_at)) AS span,"
            " count(*) FILTER (WHERE status = 'indexed') AS indexed,"
            " count(*) FILTER (WHERE status = 'failed') AS failed FROM index_jobs"
        )
        return float(row["span"]), row["indexed"], row["failed"]
    finally:
        await conn.close()


def pipeline(s: Stack, *, workers: int, n: int = 20_000, transitions_only: bool = False) -> dict[str, Any]:
    """``transitions_only``: workers that do every state move but no extraction or indexing
    (bench/transitions_worker.py)."""
    asyncio.run(harness.reset(s))
    port = free_port()
    api = s.start_api(port, name=f"api-pipeline-{workers}")
    docs = documents(500)
    url = f"http://127.0.0.1:{port}/v1/documents/batch"
    asyncio.run(post_batches(url, s.api_key, [docs] * (n // 500), 2))
    api.stop()
    asyncio.run(_analyze(s.database_url))
    started = time.monotonic()
    argv = [sys.executable, "-m", "bench.transitions_worker"] if transitions_only else None
    procs = [
        s.spawn(f"worker-moves-{workers}-{i}", argv) if argv else s.start_worker(name=f"worker-{workers}-{i}")
        for i in range(workers)
    ]
    asyncio.run(_wait_indexed(s.database_url, n, procs, timeout_s=max(120.0, n / 100)))
    wall = time.monotonic() - started
    span, indexed, failed = asyncio.run(_span(s.database_url))
    rss = max(p.peak_rss_mib() for p in procs)
    for p in procs:
        p.stop()
    return {
        "workers": workers,
        "documents": n,
        "indexed": indexed,
        "failed": failed,
        "docs_per_s": n / span,
        "span_s": span,
        "wall_s_with_start": wall,
        "worker_peak_rss_mib": rss,
    }


def ceiling_c(s: Stack, *, processes: int, n: int = 20_000) -> dict[str, Any]:
    asyncio.run(harness.reset(s))
    asyncio.run(enqueue_noops(s.redis.url(), n))
    procs = [
        s.spawn(f"ceiling-c-{processes}-{i}", [sys.executable, "-m", "bench.ceilings", "c", s.redis.url()])
        for i in range(processes)
    ]
    for p in procs:
        p.popen.wait(300)
    results = [msgspec.json.decode(p.log.read_text().strip().splitlines()[-1]) for p in procs]
    ran = [r for r in results if r["first"] is not None]
    span = max(r["last"] for r in ran) - min(r["first"] for r in ran)
    jobs = sum(r["jobs"] for r in results)
    return {"processes": processes, "jobs": jobs, "jobs_per_s": jobs / span if span > 0 else None}


async def _steady(
    url: str, key: str, rate: float, seconds: float
) -> tuple[list[tuple[uuid.UUID, float]], float]:
    """Open loop: one POST every 1/rate s whatever the answers; (job id, time of the 202)."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = msgspec.json.encode(one_kb_document())
    answered: list[tuple[uuid.UUID, float]] = []
    total = int(rate * seconds)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one() -> None:
            r = await client.post(url, content=body, headers=headers)
            when = time.time()
            if r.status_code == 202:
                answered.append((uuid.UUID(msgspec.json.decode(r.content)["job_id"]), when))

        t0 = time.monotonic()
        tasks = []
        for i in range(total):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
        achieved = total / (time.monotonic() - t0)
    return answered, achieved


async def _finished(database_url: str, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, float]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT id, extract(epoch FROM finished_at) AS t FROM index_jobs"
            " WHERE id = ANY($1) AND status = 'indexed'",
            job_ids,
        )
        return {r["id"]: float(r["t"]) for r in rows}
    finally:
        await conn.close()


def latency(s: Stack, *, rate: float = 200.0, seconds: float = 10.0) -> dict[str, Any]:
    asyncio.run(harness.reset(s))
    port = free_port()
    api = s.start_api(port, name="api-latency")
    worker = s.start_worker(name="worker-latency")
    url = f"http://127.0.0.1:{port}/v1/documents"
    # Warm-up until the worker indexes: it is then polling, and the API's pools are open.
    warm, _ = asyncio.run(_steady(url, s.api_key, 50, 1))
    asyncio.run(_wait_indexed(s.database_url, len(warm), [worker], 60))
    answered, achieved = asyncio.run(_steady(url, s.api_key, rate, seconds))
    asyncio.run(_wait_indexed(s.database_url, len(warm) + len(answered), [worker], 120))
    finished = asyncio.run(_finished(s.database_url, [j for j, _ in answered]))
    # Clamped at 0: a job can end before its 202 reaches the client.
    lat = sorted(max(0.0, finished[j] - t) * 1000 for j, t in answered if j in finished)
    result = {
        "rate_per_s": rate,
        "achieved_rate_per_s": achieved,
        "documents": len(answered),
        "p50_ms": harness.percentile(lat, 50),
        "p99_ms": harness.percentile(lat, 99),
        "api_peak_rss_mib": api.peak_rss_mib(),
        "worker_peak_rss_mib": worker.peak_rss_mib(),
    }
    worker.stop()
    api.stop()
    return result
