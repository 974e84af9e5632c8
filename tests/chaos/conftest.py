"""The chaos lab: PostgreSQL and Redis of its own, started once for the package."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.app import build_app
from searchhub.embedded import EmbeddedPostgres, EmbeddedRedis
from shared.db import create_pool
from shared.migrations import migrate
from shared.queue import create_redis
from shared.settings import Settings
from tests.chaos.support import AUDIT_SQL, LEASE_S, MAX_ATTEMPTS, Chaos


def _outside_servers() -> bool:
    return bool(os.environ.get("SEARCHHUB_TEST_DATABASE_URL") or os.environ.get("SEARCHHUB_TEST_REDIS_URL"))


@pytest.fixture(scope="package")
async def chaos() -> AsyncIterator[Chaos]:
    if _outside_servers():
        pytest.skip("chaos tests stop and restart their servers: they run on the embedded ones only")
    # Not under pytest's basetemp: any pytest session starting on this machine meanwhile resets
    # that tree to mode 0700, and PostgreSQL, run as its own user when we are root, could then no
    # longer reach its data directory to start again after a restart.
    root = Path(tempfile.mkdtemp(prefix="searchhub-chaos-"))
    pg = EmbeddedPostgres(root / "postgres", durable=False)
    redis = EmbeddedRedis(root / "redis")
    pg.start()
    redis.start()
    try:
        admin = await asyncpg.connect(pg.url())
        await admin.execute('CREATE DATABASE "chaos"')
        await admin.close()
        conn = await asyncpg.connect(pg.url("chaos"))
        await migrate(conn)
        await conn.execute(AUDIT_SQL)
        await conn.close()
        settings = Settings(
            database_url=pg.url("chaos"),
            redis_url=redis.url(),
            retry_backoff_s=0.05,
            processing_lease_s=LEASE_S,
            reconcile_interval_s=0.5,
            reconcile_queued_grace_s=1.0,
            job_max_attempts=MAX_ATTEMPTS,
            enqueue_timeout_s=0.5,
            db_connect_timeout_s=1.0,
            worker_metrics_port=0,
        )
        pool = await create_pool(settings, restricted=False)  # inspects every tenant, as a DBA
        app = build_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://chaos.test") as client:
                yield Chaos(root, pg, redis, settings, pool, client)
        await pool.close()
    finally:
        redis.stop()
        pg.remove()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def lab(chaos: Chaos) -> AsyncIterator[Chaos]:
    """The chaos servers up and Redis empty; every worker a test started is gone after it."""
    if chaos.pg.process is None:
        chaos.pg.start()
    if chaos.redis.process is None:
        chaos.redis.start()
    redis = create_redis(chaos.settings)
    await redis.flushall()
    await redis.aclose()
    yield chaos
    for worker in chaos.workers:
        if worker.alive():
            worker.kill()
    chaos.workers.clear()


@pytest.fixture(autouse=True)
def dump_logs_on_failure(lab: Chaos) -> Iterator[None]:
    """The workers' logs, written to stderr at teardown: pytest shows them only when a test fails."""
    yield
    for worker in lab.workers:
        lines = [line for line in worker.text().splitlines() if " job_indexed " not in line]
        sys.stderr.write(f"\n--- {worker.log.name} (job_indexed lines left out) ---\n")
        sys.stderr.write("\n".join(lines[-80:]) + "\n")
