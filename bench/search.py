"""Search benchmark: index a corpus of real text, then time a fixed mix of queries.

Indexing runs the worker's own code: ``pipeline.run`` (extract, split into passages) and the
``insert_passages`` statement that builds the tsvectors, in batches, with the GIN index in place.
Queries go through the HTTP API in process (auth, SQL, snippets, JSON), one at a time.

Settings (environment): SEARCHHUB_BENCH_DOCS (100000), SEARCHHUB_BENCH_QUERIES (per kind, 200).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec

from api.app import build_app
from bench import corpus
from bench.results import percentile, save
from searchhub.embedded import EmbeddedPostgres
from searchhub.tenants import create_tenant
from shared.db import connect, create_pool
from shared.migrations import migrate
from shared.queries import Q
from shared.settings import Settings
from worker import pipeline

BATCH = 500
OTHER_TENANT_SHARE = 10  # every 10th document is copied to a second tenant, whose rows search skips

PHRASES = [
    '"return self"', '"raise valueerror"', '"default value"', '"file name"', '"keyword argument"',
    '"return none"', '"see also"', '"for example"', '"this function"', '"the following"',
]  # fmt: skip


def _records(docs: list[corpus.Doc], tenant_id: uuid.UUID) -> list[tuple[Any, ...]]:
    return [
        (uuid.uuid4(), tenant_id, d.external_id, d.title, d.content, d.content_type, d.metadata) for d in docs
    ]


async def _load_documents(url: str, records: list[tuple[Any, ...]]) -> None:
    """documents rows in bulk (COPY), as if the API had accepted them. A plain connection: its
    default jsonb codec takes JSON text in COPY's binary format."""
    columns = ["id", "tenant_id", "external_id", "title", "content", "content_type", "metadata"]
    encode = msgspec.json.encode
    conn = await asyncpg.connect(url)
    try:
        await conn.copy_records_to_table(
            "documents", records=[(*r[:6], encode(r[6]).decode()) for r in records], columns=columns
        )
    finally:
        await conn.close()


def _entries(batch: list[tuple[Any, ...]], config: str) -> list[pipeline.IndexEntry]:
    entries = []
    for doc_id, _tenant, _ext, title, content, content_type, _meta in batch:
        source = pipeline.Source(
            document_id=doc_id, version=1, title=title, content=content, content_type=content_type
        )
        # The worker fails such a job (binary test data in the sources); so does the bench.
        with contextlib.suppress(pipeline.PermanentError):
            entries.append(pipeline.run(source, config))
    return entries


async def _write(conn: asyncpg.Connection, entries: list[pipeline.IndexEntry], config: str) -> None:
    ids, versions, numbers, titles, bodies = [], [], [], [], []
    for e in entries:
        for n, body in enumerate(e.passages):
            ids.append(e.document_id)
            versions.append(e.version)
            numbers.append(n)
            titles.append(e.title)
            bodies.append(body)
    async with conn.transaction():
        await conn.execute(Q.insert_passages, config, ids, versions, numbers, titles, bodies)
        await conn.execute(
            "UPDATE documents SET indexed_version = version, indexed_at = now() WHERE id = ANY($1::uuid[])",
            [e.document_id for e in entries],
        )


async def _index(pool: asyncpg.Pool, records: list[tuple[Any, ...]], config: str) -> tuple[int, int]:
    """Extraction in a thread (Python), tsvectors and GIN upkeep in PostgreSQL, overlapped: the
    machine's two cores both work. Returns the documents indexed and the passages written."""
    queue: asyncio.Queue[list[pipeline.IndexEntry] | None] = asyncio.Queue(maxsize=4)
    passages = indexed = 0

    async def produce() -> None:
        for start in range(0, len(records), BATCH):
            await queue.put(await asyncio.to_thread(_entries, records[start : start + BATCH], config))
        for _ in range(2):
            await queue.put(None)

    async def consume() -> None:
        nonlocal passages, indexed
        async with pool.acquire() as conn:
            while (entries := await queue.get()) is not None:
                await _write(conn, entries, config)
                passages += sum(len(e.passages) for e in entries)
                indexed += len(entries)

    await asyncio.gather(produce(), consume(), consume())
    return indexed, passages


async def _query_mix(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """A fixed mix, from the corpus' own term statistics: the same corpus gives the same queries."""
    # Over all tenants: the second tenant's documents are a sample of the first one's.
    stats = await conn.fetch(
        "SELECT word, ndoc FROM ts_stat('SELECT tsv FROM search_passages')"
        " WHERE length(word) > 2 AND word ~ '^[a-z]+$'"
        # Lexemes a user would type as they are (a stem such as 'rais' would not find itself).
        " AND plainto_tsquery('english', word)::text = quote_literal(word)"
        " ORDER BY ndoc DESC, word"
    )
    words = [r["word"] for r in stats]
    common = words[:10]
    rare = [r["word"] for r in stats if 2 <= r["ndoc"] <= 10][::97][:20]
    middle = words[40:60]
    return {
        "rare_term": rare,
        "common_term": common,
        "phrase": PHRASES,
        "two_term_and": [f"{a} {b}" for a, b in zip(middle[:10], middle[10:], strict=True)],
        "negation": [f"{a} -{b}" for a, b in zip(common, words[10:20], strict=True)],
        # Not part of the fixed mix: common words within a metadata filter.
        "filtered": [f'{w}\t{{"kind": "class"}}' for w in common],
        "_frequency": [f"{r['word']}:{r['ndoc']}" for r in stats[:10]],
    }


async def _time_queries(
    client: httpx.AsyncClient, key: str, queries: Iterable[str], rounds: int
) -> tuple[list[float], float]:
    headers = {"Authorization": f"Bearer {key}"}
    # A tab separates a query from its metadata filter.
    params = [dict(zip(("q", "filter"), q.split("\t"), strict=False)) for q in queries]
    for p in params:  # warm the caches, as a running service has them
        (await client.get("/v1/search", params=p, headers=headers)).raise_for_status()
    timings: list[float] = []
    hits = 0
    for i in range(rounds):
        started = time.perf_counter()
        response = await client.get("/v1/search", params=params[i % len(params)], headers=headers)
        timings.append((time.perf_counter() - started) * 1000)
        response.raise_for_status()
        hits += len(response.json()["hits"])
    return sorted(timings), hits / rounds


async def run(docs_wanted: int, rounds: int, workdir: Path) -> dict[str, Any]:
    pg = EmbeddedPostgres(workdir / "postgres", durable=False)
    pg.start()
    try:
        settings = Settings(database_url=pg.url(), redis_url="redis://127.0.0.1:1/0", db_pool_max=4)
        conn = await connect(settings)
        await migrate(conn)
        tenant_id, key = await create_tenant(conn, "bench")
        other_id, _ = await create_tenant(conn, "bench-other")

        started = time.perf_counter()
        docs = list(corpus.documents(docs_wanted))
        corpus_s = time.perf_counter() - started
        records = _records(docs, tenant_id) + _records(docs[::OTHER_TENANT_SHARE], other_id)
        chars = sum(len(d.content) for d in docs)
        print(f"search: corpus of {len(docs):,} documents ({chars / 1e6:.0f} MB) read in {corpus_s:.1f} s")

        # Bulk indexing of two tenants at once runs as the schema owner, like a restore; the timed
        # queries below go through the API, under row-level security.
        pool = await create_pool(settings, max_size=4, restricted=False)
        started = time.perf_counter()
        await _load_documents(pg.url(), records)
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        indexed, passages = await _index(pool, records, settings.search_config)
        index_s = time.perf_counter() - started
        started = time.perf_counter()
        await conn.execute("VACUUM ANALYZE search_passages")
        await conn.execute("VACUUM ANALYZE documents")
        vacuum_s = time.perf_counter() - started
        rate = len(records) / index_s
        print(
            f"search: indexed {indexed:,} of {len(records):,} documents ({passages:,} passages;"
            f" {len(records) - indexed} refused as not text) in {index_s:.1f} s: "
            f"{rate:,.0f} documents/s (COPY of the rows {load_s:.1f} s, VACUUM ANALYZE {vacuum_s:.1f} s)"
        )
        mix = await _query_mix(conn)
        print(f"search: most frequent terms (term:passages): {', '.join(mix.pop('_frequency'))}")
        await pool.close()

        figures: dict[str, Any] = {
            "documents": len(records),
            "documents_refused": len(records) - indexed,
            "tenant_documents": len(docs),
            "passages": passages,
            "corpus_mb": round(chars / 1e6, 1),
            "index_documents_per_s": round(rate, 1),
            "index_s": round(index_s, 1),
            "queries": {},
        }
        app = build_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for kind, queries in mix.items():
                    timings, mean_hits = await _time_queries(client, key, queries, rounds)
                    p50, p95, p99 = (percentile(timings, p) for p in (50, 95, 99))
                    figures["queries"][kind] = {
                        "p50_ms": round(p50, 2),
                        "p95_ms": round(p95, 2),
                        "p99_ms": round(p99, 2),
                        "mean_hits": round(mean_hits, 1),
                        "examples": queries[:3],
                    }
                    print(
                        f"search: {kind:<13} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms  p99 {p99:6.1f} ms"
                        f"  ({rounds} queries, e.g. {queries[0]!r})"
                    )
        await conn.close()
        return figures
    finally:
        pg.remove()


def main() -> None:
    docs = int(os.environ.get("SEARCHHUB_BENCH_DOCS", "100000"))
    rounds = int(os.environ.get("SEARCHHUB_BENCH_QUERIES", "200"))
    workdir = Path(tempfile.mkdtemp(prefix="searchhub-bench-search-"))
    try:
        figures = asyncio.run(run(docs, rounds, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    save("search", figures)
    print("search: figures saved to bench/results/latest.json under 'search'")
