"""Chaos: real worker processes, real PostgreSQL and Redis, and faults done to them for real
(SIGKILL, stop, FLUSHALL, restart). Nothing accepted may be lost.

These tests get servers of their own (module scope), so that stopping and restarting them never
disturbs the rest of the suite. Short leases and intervals keep each test to seconds. Every test
ends by checking the invariants over the whole database (``assert_invariants``), with the history
of every job's status and every document's indexed version recorded by test-only triggers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.app import build_app
from searchhub.embedded import EmbeddedPostgres, EmbeddedRedis, _die_with_parent, free_port
from searchhub.tenants import create_tenant
from shared.constants import QUEUE_NAME
from shared.db import create_pool
from shared.migrations import migrate
from shared.queue import create_redis
from shared.settings import Settings
from tests.conftest import Tenant
from tests.support import eventually
from worker.reconciler import reconcile_once

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(240)]

LEASE_S = 2.0
CONCURRENCY = 8
MAX_ATTEMPTS = 3
#: Generous: recovery is due within lease + interval (2.5 s); arq alone would take minutes.
SETTLE_S = 90.0

ALLOWED_MOVES = {
    (None, "queued"),
    ("queued", "processing"),
    ("processing", "indexed"),
    ("processing", "failed"),
    ("processing", "queued"),
}

AUDIT_SQL = """
CREATE TABLE test_job_moves (
    id         bigserial PRIMARY KEY,
    job_id     uuid NOT NULL,
    old_status text,
    new_status text NOT NULL,
    attempts   integer NOT NULL
);
CREATE FUNCTION test_record_job_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO test_job_moves (job_id, old_status, new_status, attempts)
        VALUES (NEW.id, NULL, NEW.status, NEW.attempts);
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO test_job_moves (job_id, old_status, new_status, attempts)
        VALUES (NEW.id, OLD.status, NEW.status, NEW.attempts);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER test_record_job_move AFTER INSERT OR UPDATE ON index_jobs
    FOR EACH ROW EXECUTE FUNCTION test_record_job_move();

CREATE TABLE test_index_moves (
    document_id uuid NOT NULL,
    old_version integer,
    new_version integer
);
CREATE FUNCTION test_record_index_move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO test_index_moves VALUES (NEW.id, OLD.indexed_version, NEW.indexed_version);
    RETURN NULL;
END $$;
CREATE TRIGGER test_record_index_move AFTER UPDATE ON documents
    FOR EACH ROW WHEN (OLD.indexed_version IS DISTINCT FROM NEW.indexed_version)
    EXECUTE FUNCTION test_record_index_move();
"""


def spawn(command: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``searchhub <command>`` as a child process that dies with us, its output in ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "searchhub", command],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=log.parent,
            preexec_fn=_die_with_parent(signal.SIGKILL),
        )


class WorkerProcess:
    """``searchhub worker`` as a child process, its log in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = spawn("worker", env, log)

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    async def terminate(self, timeout_s: float = 30) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, timeout_s)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


_worker_numbers = itertools.count(1)


@dataclass
class Chaos:
    root: Path
    pg: EmbeddedPostgres
    redis: EmbeddedRedis
    settings: Settings
    pool: asyncpg.Pool
    client: httpx.AsyncClient
    workers: list[WorkerProcess] = field(default_factory=list)

    def worker_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEARCHHUB_")}
        s = self.settings
        return env | {
            "SEARCHHUB_DATABASE_URL": s.database_url or "",
            "SEARCHHUB_REDIS_URL": s.redis_url or "",
            "SEARCHHUB_WORKER_METRICS_PORT": "0",
            "SEARCHHUB_WORKER_CONCURRENCY": str(CONCURRENCY),
            "SEARCHHUB_WORKER_POLL_DELAY_S": "0.02",
            "SEARCHHUB_WORKER_SHUTDOWN_GRACE_S": "1",
            "SEARCHHUB_PROCESSING_LEASE_S": str(s.processing_lease_s),
            "SEARCHHUB_RECONCILE_INTERVAL_S": str(s.reconcile_interval_s),
            "SEARCHHUB_RECONCILE_QUEUED_GRACE_S": str(s.reconcile_queued_grace_s),
            "SEARCHHUB_RETRY_BACKOFF_S": str(s.retry_backoff_s),
            "SEARCHHUB_JOB_MAX_ATTEMPTS": str(s.job_max_attempts),
            "SEARCHHUB_DB_CONNECT_TIMEOUT_S": "1",
        }

    def start_worker(self) -> WorkerProcess:
        worker = WorkerProcess(self.worker_env(), self.root / f"worker-{next(_worker_numbers)}.log")
        self.workers.append(worker)
        return worker

    async def new_tenant(self) -> Tenant:
        async with self.pool.acquire() as conn:
            tenant_id, key = await create_tenant(conn, f"chaos-{secrets.token_hex(6)}")
        return Tenant(tenant_id, key, self.client)


def _outside_servers() -> bool:
    return bool(os.environ.get("SEARCHHUB_TEST_DATABASE_URL") or os.environ.get("SEARCHHUB_TEST_REDIS_URL"))


@pytest.fixture(scope="module")
async def chaos(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Chaos]:
    if _outside_servers():
        pytest.skip("chaos tests stop and restart their servers: they run on the embedded ones only")
    root = Path(tmp_path_factory.mktemp("chaos"))
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
        pool = await create_pool(settings)
        app = build_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://chaos.test") as client:
                yield Chaos(root, pg, redis, settings, pool, client)
        await pool.close()
    finally:
        redis.stop()
        pg.remove()


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


@pytest.fixture
def dump_logs_on_failure(lab: Chaos) -> Iterator[None]:
    """The workers' logs, written to stderr at teardown: pytest shows them only when a test fails."""
    yield
    for worker in lab.workers:
        lines = [line for line in worker.text().splitlines() if " job_indexed " not in line]
        sys.stderr.write(f"\n--- {worker.log.name} (job_indexed lines left out) ---\n")
        sys.stderr.write("\n".join(lines[-80:]) + "\n")


# ---------------------------------------------------------------- helpers


async def post_documents(tenant: Tenant, count: int, prefix: str = "doc") -> list[dict]:
    answers: list[dict] = []
    for start in range(0, count, 50):
        batch = [
            tenant.post("/v1/documents", {"content": f"{prefix} {i} text", "title": f"{prefix}-{i}"})
            for i in range(start, min(start + 50, count))
        ]
        for response in await asyncio.gather(*batch):
            assert response.status_code == 202, response.text
            answers.append(response.json())
    return answers


async def statuses(pool: asyncpg.Pool, tenant: Tenant) -> dict[str, int]:
    rows = await pool.fetch(
        "SELECT status, count(*) AS n FROM index_jobs WHERE tenant_id = $1 GROUP BY status", tenant.id
    )
    return {r["status"]: r["n"] for r in rows}


async def all_finished(pool: asyncpg.Pool, tenant: Tenant) -> dict[str, int]:
    return await eventually(
        lambda: statuses(pool, tenant),
        lambda s: not s.get("queued") and not s.get("processing"),
        timeout_s=SETTLE_S,
        what="every job finished",
    )


@contextlib.asynccontextmanager
async def documents_held(pool: asyncpg.Pool, document_ids: list[str]) -> AsyncIterator[asyncpg.Connection]:
    """Row locks on these documents: a worker claims their jobs but cannot complete them (the
    completing UPDATE of the document waits), so they stay ``processing`` — a busy worker."""
    conn = await pool.acquire()
    tx = conn.transaction()
    await tx.start()
    try:
        await conn.execute(
            "SELECT 1 FROM documents WHERE id = ANY($1::uuid[]) FOR NO KEY UPDATE",
            [uuid.UUID(d) for d in document_ids],
        )
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await tx.rollback()
        with contextlib.suppress(Exception):
            await pool.release(conn)


async def held_in_flight(pool: asyncpg.Pool, held: list[str]) -> set[uuid.UUID]:
    """Jobs of held documents that a worker claimed: they stay processing while the hold lasts."""
    rows = await pool.fetch(
        "SELECT id FROM index_jobs WHERE status = 'processing' AND document_id = ANY($1::uuid[])",
        [uuid.UUID(d) for d in held],
    )
    return {r["id"] for r in rows}


async def busy(pool: asyncpg.Pool, held: list[str]) -> set[uuid.UUID]:
    """Waits until every slot of a worker is taken by a job it cannot finish."""
    return await eventually(
        lambda: held_in_flight(pool, held), lambda ids: len(ids) >= CONCURRENCY, timeout_s=60, what="busy"
    )


async def assert_invariants(pool: asyncpg.Pool, *, failed_allowed: bool = False) -> None:
    """Over the whole database: nothing stuck, every document's latest job indexed at the
    document's latest version (or failed, where the test made it fail), no stale index, attempts
    within the maximum, and only the allowed status moves, each job indexed at most once."""
    unfinished = await pool.fetch(
        "SELECT id, status FROM index_jobs WHERE status IN ('queued', 'processing')"
    )
    assert not unfinished, f"jobs not finished: {unfinished[:5]}"
    assert await pool.fetchval("SELECT count(*) FROM stuck_index_jobs") == 0

    latest = await pool.fetch(
        """
        SELECT DISTINCT ON (d.id) d.id, d.version, d.indexed_version, j.status, j.document_version, j.error
        FROM documents d JOIN index_jobs j ON j.document_id = d.id
        ORDER BY d.id, j.created_at DESC, j.id DESC
        """
    )
    for row in latest:
        if row["status"] == "failed" and failed_allowed:
            continue
        assert row["status"] == "indexed", dict(row)
        assert row["document_version"] == row["version"], dict(row)
        assert row["indexed_version"] == row["version"], dict(row)

    over = await pool.fetchval("SELECT count(*) FROM index_jobs WHERE attempts > $1", MAX_ATTEMPTS)
    assert over == 0
    moves = await pool.fetch("SELECT DISTINCT old_status, new_status FROM test_job_moves")
    assert {(m["old_status"], m["new_status"]) for m in moves} <= ALLOWED_MOVES, [dict(m) for m in moves]
    over_audit = await pool.fetchval("SELECT count(*) FROM test_job_moves WHERE attempts > $1", MAX_ATTEMPTS)
    assert over_audit == 0
    twice = await pool.fetch(
        "SELECT job_id FROM test_job_moves WHERE new_status = 'indexed' GROUP BY job_id HAVING count(*) > 1"
    )
    assert not twice
    same_version_twice = await pool.fetch(
        """
        SELECT document_id, document_version FROM index_jobs WHERE status = 'indexed'
        GROUP BY document_id, document_version HAVING count(*) > 1
        """
    )
    assert not same_version_twice
    backwards = await pool.fetch(
        """
        SELECT * FROM test_index_moves
        WHERE new_version IS NULL OR (old_version IS NOT NULL AND new_version <= old_version)
        """
    )
    assert not backwards, [dict(b) for b in backwards]


# ---------------------------------------------------------------- the five chaos tests


@pytest.mark.usefixtures("dump_logs_on_failure")
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


@pytest.mark.usefixtures("dump_logs_on_failure")
async def test_documents_posted_while_redis_is_down_are_indexed_once_it_is_back(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    worker = lab.start_worker()
    first = (await post_documents(tenant, 1, "before"))[0]
    await eventually(lambda: tenant.job(first["job_id"]), lambda j: j["status"] == "indexed", timeout_s=60)

    lab.redis.stop()
    ready = await lab.client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "checks": {"postgres": "ok", "redis": "down"}}
    docs = await post_documents(tenant, 40, "during")  # each answered 202
    assert (await statuses(lab.pool, tenant)).get("queued") == 40
    lab.redis.start()  # empty: nothing of the 40 ever reached it

    assert await all_finished(lab.pool, tenant) == {"indexed": 41}
    assert (await lab.client.get("/readyz")).status_code == 200
    assert worker.alive()
    log = worker.text()
    assert log.count("redis_unavailable") == 1, log[-3000:]
    assert "redis_reconnected" in log
    redis = create_redis(lab.settings)
    try:
        worker.kill()  # so that the job stays in Redis for us to see the API's own enqueue
        after = await post_documents(tenant, 1, "after")
        # Enqueued by the API itself: its Redis client reconnected on its own.
        assert await redis.exists(f"arq:job:{after[0]['job_id']}")
    finally:
        await redis.aclose()
    lab.start_worker()
    await eventually(lambda: tenant.job(after[0]["job_id"]), lambda j: j["status"] == "indexed", timeout_s=60)
    assert len(docs) == 40
    await assert_invariants(lab.pool)


@pytest.mark.usefixtures("dump_logs_on_failure")
async def test_post_while_redis_hangs_is_answered_202_and_delivered_later(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    assert lab.redis.process is not None
    lab.redis.process.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        docs = await post_documents(tenant, 5, "hung")  # the enqueue gives up; the rows stay
        ready = await lab.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["redis"] == "down"
    finally:
        lab.redis.process.send_signal(signal.SIGCONT)
    lab.start_worker()

    assert await all_finished(lab.pool, tenant) == {"indexed": len(docs)}
    await assert_invariants(lab.pool)


@pytest.mark.usefixtures("dump_logs_on_failure")
async def test_flushall_with_jobs_outstanding_loses_nothing(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    docs = await post_documents(tenant, 120)
    held = [d["document_id"] for d in docs[::2]]
    redis = create_redis(lab.settings)
    try:
        async with documents_held(lab.pool, held):
            lab.start_worker()
            await busy(lab.pool, held)
            assert await redis.zcard(QUEUE_NAME) > 0
            await redis.flushall()
    finally:
        await redis.aclose()

    assert await all_finished(lab.pool, tenant) == {"indexed": 120}
    await assert_invariants(lab.pool)


@pytest.mark.usefixtures("dump_logs_on_failure")
async def test_postgres_restart_while_the_worker_is_busy_fails_nothing(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    docs = await post_documents(tenant, 120)
    held = [d["document_id"] for d in docs[::2]]
    worker = lab.start_worker()
    async with documents_held(lab.pool, held):
        await busy(lab.pool, held)
        await asyncio.to_thread(lab.pg.restart)  # cuts every session, the lock's included

    assert await all_finished(lab.pool, tenant) == {"indexed": 120}
    assert worker.alive()
    assert "job_database_unavailable" in worker.text()  # the outage did hit jobs in flight
    assert await lab.pool.fetchval("SELECT count(*) FROM index_jobs WHERE status = 'failed'") == 0
    await assert_invariants(lab.pool)


@pytest.mark.usefixtures("dump_logs_on_failure")
async def test_postgres_down_longer_than_the_lease_fails_nothing(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    docs = await post_documents(tenant, 40)
    held = [d["document_id"] for d in docs]
    worker = lab.start_worker()
    async with documents_held(lab.pool, held):
        await busy(lab.pool, held)
        await asyncio.to_thread(lab.pg.stop)

    async def gave_up() -> int:
        # Jobs that could not hand themselves back within the lease, left for the reconciler.
        lines = worker.text().splitlines()
        return sum(" job_database_unavailable " in ln and "handed_back" not in ln for ln in lines)

    await eventually(
        gave_up, lambda n: n >= CONCURRENCY, timeout_s=60, what="attempts outlived by the outage"
    )
    await asyncio.to_thread(lab.pg.start)

    assert await all_finished(lab.pool, tenant) == {"indexed": 40}
    assert worker.alive()
    assert await lab.pool.fetchval("SELECT count(*) FROM index_jobs WHERE status = 'failed'") == 0
    await assert_invariants(lab.pool)


@pytest.mark.usefixtures("dump_logs_on_failure")
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


# ---------------------------------------------------------------- outages at the API, graceful stop


@pytest.mark.usefixtures("dump_logs_on_failure")
async def test_post_while_postgres_is_down_answers_503_and_writes_nothing(lab: Chaos) -> None:
    tenant = await lab.new_tenant()
    redis = create_redis(lab.settings)
    try:
        lab.pg.stop()
        response = await tenant.post("/v1/documents", {"content": "refused"})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "unavailable"
        ready = await lab.client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"postgres": "down", "redis": "ok"}
        assert await redis.zcard(QUEUE_NAME) == 0
        lab.pg.start()

        accepted = await eventually(
            lambda: tenant.post("/v1/documents", {"content": "accepted"}),
            lambda r: r.status_code == 202,
            what="the API's pool reconnected",
        )
    finally:
        await redis.aclose()
    assert accepted.json()["status"] == "queued"
    contents = await lab.pool.fetch("SELECT content FROM documents WHERE tenant_id = $1", tenant.id)
    assert [r["content"] for r in contents] == ["accepted"]
    lab.start_worker()
    assert await all_finished(lab.pool, tenant) == {"indexed": 1}
    await assert_invariants(lab.pool)


@pytest.mark.usefixtures("dump_logs_on_failure")
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
