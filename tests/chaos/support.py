"""What the chaos tests share: the lab of servers and processes, faults, and the invariants."""

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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from searchhub.embedded import EmbeddedPostgres, EmbeddedRedis, _die_with_parent
from searchhub.tenants import create_tenant
from shared.settings import Settings
from tests.conftest import Tenant
from tests.support import eventually

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
-- SECURITY DEFINER: the audit writes as the owner, whatever role (RLS-bound or not) moved the job.
CREATE TABLE test_job_moves (
    id         bigserial PRIMARY KEY,
    job_id     uuid NOT NULL,
    old_status text,
    new_status text NOT NULL,
    attempts   integer NOT NULL
);
CREATE FUNCTION test_record_job_move() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
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
CREATE FUNCTION test_record_index_move() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
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
