"""The benchmark's machinery: embedded servers, the API and workers as separate processes, wrk,
and reading a process's CPU time and peak memory from /proc."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

from searchhub.embedded import EmbeddedPostgres, EmbeddedRedis
from searchhub.tenants import create_tenant
from shared.migrations import migrate

DATABASE = "searchhub_bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process and its reaped children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return (utime + stime + cutime + cstime) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all processes, ours or not)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the most resident memory the process has had."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def pids(self) -> list[int]:
        """The process and its children (uvicorn's worker processes)."""
        return [self.pid, *children(self.pid)]

    def peak_rss_mib(self) -> float:
        """The largest serving process's peak (a uvicorn supervisor only forks)."""
        return max(peak_rss_mib(p) for p in self.pids())

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p) for p in self.pids())

    def stop(self, timeout_s: float = 20) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def check_alive(self) -> None:
        if self.popen.poll() is not None:
            tail = self.log.read_text()[-3000:] if self.log.exists() else ""
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}\n{tail}")


@dataclass
class Stack:
    """PostgreSQL and Redis (embedded, throwaway), a migrated database and a tenant."""

    root: Path
    pg: EmbeddedPostgres
    redis: EmbeddedRedis
    database_url: str
    api_key: str = ""
    tenant_id: object = None
    processes: list[Process] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SEARCHHUB_")}
        env.update(
            SEARCHHUB_DATABASE_URL=self.database_url,
            SEARCHHUB_REDIS_URL=self.redis.url(),
            SEARCHHUB_LOG_LEVEL="WARNING",
            SEARCHHUB_WORKER_METRICS_PORT="0",
        )
        # Knobs under test pass through (SEARCHHUB_BENCH_ENV_X=1 → SEARCHHUB_X=1).
        for key, value in os.environ.items():
            if key.startswith("SEARCHHUB_BENCH_ENV_"):
                env["SEARCHHUB_" + key.removeprefix("SEARCHHUB_BENCH_ENV_")] = value
        env.update(extra)
        return env

    def spawn(self, name: str, argv: Sequence[str], **env: str) -> Process:
        log = self.root / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                list(argv), env=self.env(**env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def start_api(self, port: int, name: str = "api", **env: str) -> Process:
        process = self.spawn(
            name, [sys.executable, "-m", "searchhub", "api"], SEARCHHUB_PORT=str(port), **env
        )
        wait_http(f"http://127.0.0.1:{port}/healthz", process)
        return process

    def start_worker(self, name: str = "worker", **env: str) -> Process:
        return self.spawn(name, [sys.executable, "-m", "searchhub", "worker"], **env)

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and its live children (PostgreSQL's backends), with reaped ones."""
    return cpu_seconds(pid) + sum(cpu_seconds(c) for c in children(pid) if Path(f"/proc/{c}").exists())


def wait_http(url: str, process: Process, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        process.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{process.name} did not answer {url} within {timeout_s} s")


async def _prepare(admin_url: str, database_url: str) -> tuple[object, str]:
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    await admin.close()
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn)
        return await create_tenant(conn, "bench")
    finally:
        await conn.close()


@contextlib.contextmanager
def stack() -> Iterator[Stack]:
    root = Path(tempfile.mkdtemp(prefix="searchhub-bench-"))
    pg = EmbeddedPostgres(root / "postgres", durable=False)
    redis = EmbeddedRedis(root / "redis")
    pg.start()
    redis.start()
    s = Stack(root=root, pg=pg, redis=redis, database_url=pg.url(DATABASE))
    try:
        s.tenant_id, s.api_key = asyncio.run(_prepare(pg.url(), s.database_url))
        yield s
    finally:
        s.stop_all()
        redis.stop()
        pg.remove()
        shutil.rmtree(root, ignore_errors=True)


async def reset(s: Stack) -> None:
    """Empty tables and queue between scenarios, so each one starts alike."""
    conn = await asyncpg.connect(s.database_url)
    try:
        await conn.execute("TRUNCATE documents, index_jobs, idempotency_keys CASCADE")
        await conn.execute("VACUUM ANALYZE documents, index_jobs")
    finally:
        await conn.close()
    import redis.asyncio as aioredis

    client = aioredis.from_url(s.redis.url())
    await client.flushall()
    await client.aclose()


# wrk ---------------------------------------------------------------------------------------------

_WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = io.open("{body}", "rb"):read("*a")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
"""


@dataclass
class LoadResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    generator: str
    generator_cpu_share: float  # of the whole machine's CPU over the run

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


def ensure_wrk() -> str | None:
    """wrk, installed from Debian's packages when missing and allowed (root, apt-get present)."""
    found = shutil.which("wrk")
    if found or os.environ.get("SEARCHHUB_BENCH_NO_INSTALL"):
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench: installing wrk (apt-get install -y wrk) …", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, check=False)
    return shutil.which("wrk")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(url: str, body: bytes, key: str, connections: int, duration_s: float, root: Path) -> LoadResult:
    body_file = root / "body.json"
    body_file.write_bytes(body)
    script = root / "post.lua"
    script.write_text(_WRK_SCRIPT.format(body=body_file, key=key))
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{int(duration_s)}s", "--latency", "-s", str(script), url]
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    out = process.stdout.read().decode() if process.stdout else ""
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed: {out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])  # type: ignore[index]
    total = int(re.search(r"(\d+) requests in", out)[1])  # type: ignore[index]
    lat = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.MULTILINE))
    p50 = _ms(*re.match(r"([\d.]+)(\w+)", lat["50"]).groups())  # type: ignore[union-attr]
    p99 = _ms(*re.match(r"([\d.]+)(\w+)", lat["99"]).groups())  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = int(non2xx[1]) if non2xx else 0
    if socket_errors:
        errors += sum(int(x) for x in socket_errors.groups())
    cpu = usage.ru_utime + usage.ru_stime
    return LoadResult(rps, p50, p99, total, errors, "wrk", cpu / (wall * (os.cpu_count() or 1)))


async def python_load(
    url: str, body: bytes, key: str, connections: int, duration_s: float
) -> LoadResult:  # pragma: no cover - used only where wrk cannot be had
    """A fallback load generator (httpx, one event loop): far weaker than wrk, so its figures are a
    floor, and its CPU share says how much it stole from the server."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + duration_s
    cpu0 = time.process_time()
    started = time.monotonic()
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one_connection() -> None:
            nonlocal errors
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                r = await client.post(url, content=body, headers=headers)
                latencies.append(time.perf_counter() - t0)
                errors += r.status_code >= 300

        await asyncio.gather(*(one_connection() for _ in range(connections)))
    wall = time.monotonic() - started
    cpu = time.process_time() - cpu0
    latencies.sort()
    return LoadResult(
        len(latencies) / wall,
        percentile(latencies, 50) * 1000,
        percentile(latencies, 99) * 1000,
        len(latencies),
        errors,
        "python-httpx",
        cpu / (wall * (os.cpu_count() or 1)),
    )


def percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[k]
