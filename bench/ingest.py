"""Ingest scenarios: POST /v1/documents at 64 connections beside ceilings A and B, and the batch
endpoint's documents/s."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import httpx
import msgspec

from bench import harness
from bench.harness import Stack
from searchhub.embedded import free_port


def one_kb_document(seq: int = 0) -> dict[str, Any]:
    """A document whose JSON body is 1,024 bytes."""
    doc: dict[str, Any] = {
        "title": f"bench {seq}",
        "metadata": {"source": "bench", "seq": seq},
        "content": "",
    }
    filler = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    base = len(msgspec.json.encode(doc))
    doc["content"] = (filler * 20)[: 1024 - base]
    assert len(msgspec.json.encode(doc)) == 1024
    return doc


def _load(url: str, body: bytes, key: str, connections: int, seconds: float, s: Stack) -> harness.LoadResult:
    if harness.ensure_wrk():
        return harness.run_wrk(url, body, key, connections, seconds, s.root)
    print("bench: wrk is unavailable; falling back to a Python load generator (a floor)", flush=True)
    return asyncio.run(harness.python_load(url, body, key, connections, seconds))


def ingest(s: Stack, *, connections: int = 64, seconds: float = 10.0) -> dict[str, Any]:
    body = msgspec.json.encode(one_kb_document())
    results: dict[str, Any] = {"connections": connections, "seconds": seconds, "body_bytes": len(body)}

    # Ceiling A: the HTTP stack alone.
    port = free_port()
    bare = s.spawn("ceiling-a", [sys.executable, "-m", "bench.ceilings", "a", str(port)])
    harness.wait_http(f"http://127.0.0.1:{port}/healthz", bare)
    results["ceiling_a"] = _load(
        f"http://127.0.0.1:{port}/v1/documents", body, s.api_key, connections, seconds, s
    )
    bare.stop()

    # Ceiling B: the stores alone (inserts + arq enqueue_job, no HTTP).
    asyncio.run(harness.reset(s))
    out = subprocess.run(
        [sys.executable, "-m", "bench.ceilings", "b", s.database_url, s.redis.url(), str(s.tenant_id),
         str(connections), str(seconds)],
        input=body, capture_output=True, check=True,
    )  # fmt: skip
    results["ceiling_b"] = msgspec.json.decode(out.stdout.splitlines()[-1])

    # The real route, on a fresh table and queue. No worker runs: this is the ingest path only.
    asyncio.run(harness.reset(s))
    port = free_port()
    api = s.start_api(port, name="api-ingest")
    # Warm up (connections, prepared statements, auth cache) outside the measured window.
    _load(f"http://127.0.0.1:{port}/v1/documents", body, s.api_key, connections, 2, s)
    pg_pid, redis_pid = s.pg.process.pid, s.redis.process.pid  # type: ignore[union-attr]
    cpu0 = (
        api.cpu_seconds(), harness.tree_cpu_seconds(pg_pid), harness.cpu_seconds(redis_pid),
        harness.machine_busy_seconds(),
    )  # fmt: skip
    t0 = time.monotonic()
    real = _load(f"http://127.0.0.1:{port}/v1/documents", body, s.api_key, connections, seconds, s)
    cpu1 = (
        api.cpu_seconds(), harness.tree_cpu_seconds(pg_pid), harness.cpu_seconds(redis_pid),
        harness.machine_busy_seconds(),
    )  # fmt: skip
    machine_s = (time.monotonic() - t0) * (harness.os.cpu_count() or 1)
    for name, before, after in zip(("api", "postgres", "redis", "machine"), cpu0, cpu1, strict=True):
        results[f"{name}_cpu_share"] = (after - before) / machine_s
    results["ingest"] = real
    results["api_peak_rss_mib"] = api.peak_rss_mib()
    api.stop()

    a = results["ceiling_a"].requests_per_s
    b = results["ceiling_b"]["ops_per_s"]
    results["ingest_over_a"] = real.requests_per_s / a if a else None
    results["ingest_over_b"] = real.requests_per_s / b if b else None
    for key in ("ceiling_a", "ingest"):
        results[key] = results[key].as_dict()
    return results


async def post_batches(
    url: str, key: str, batches: list[list[dict[str, Any]]], concurrency: int
) -> list[Any]:
    """Posts every batch (``concurrency`` at a time); returns the 202 bodies' items."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    items: list[Any] = [None] * len(batches)
    queue = list(enumerate(batches))
    async with httpx.AsyncClient(timeout=60) as client:

        async def poster() -> None:
            while queue:
                index, batch = queue.pop(0)
                r = await client.post(url, content=msgspec.json.encode({"documents": batch}), headers=headers)
                if r.status_code != 202:
                    raise RuntimeError(f"batch answered {r.status_code}: {r.text[:500]}")
                items[index] = msgspec.json.decode(r.content)["items"]

        await asyncio.gather(*(poster() for _ in range(concurrency)))
    return [item for batch in items for item in batch]


def documents(n: int) -> list[dict[str, Any]]:
    doc = one_kb_document()
    return [{**doc, "title": f"bench {i}"} for i in range(n)]


def batch(s: Stack, *, batch_size: int = 500, batches: int = 20, concurrency: int = 2) -> dict[str, Any]:
    asyncio.run(harness.reset(s))
    port = free_port()
    api = s.start_api(port, name="api-batch")
    url = f"http://127.0.0.1:{port}/v1/documents/batch"
    docs = documents(batch_size)
    asyncio.run(post_batches(url, s.api_key, [docs] * 2, 1))  # warm-up
    t0 = time.monotonic()
    asyncio.run(post_batches(url, s.api_key, [docs] * batches, concurrency))
    elapsed = time.monotonic() - t0
    result = {
        "batch_size": batch_size,
        "batches": batches,
        "concurrency": concurrency,
        "docs_per_s": batch_size * batches / elapsed,
        "seconds": elapsed,
        "api_peak_rss_mib": api.peak_rss_mib(),
    }
    api.stop()
    return result
