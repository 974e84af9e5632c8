"""`searchhub dev` (what `make run` starts): the whole system from nothing, and a clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from searchhub.embedded import free_port

DEV_KEY = "sh_dev-key-for-the-dev-command-test"


def _children(pid: int) -> set[int]:
    """Processes whose parent is ``pid`` (from /proc: no extra dependency)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid …"; comm may hold spaces, so split after its closing parenthesis.
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state == "Z"


def _processes_under(path: Path) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in cmdline:
            found.append(cmdline)
    return found


def _wait_for_line(stream: object, marker: str, timeout_s: float) -> list[str]:
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = stream.readline()  # type: ignore[attr-defined]
        if not line:
            break
        lines.append(line)
        if marker in line:
            return lines
    raise AssertionError(f"{marker!r} not printed; got: {''.join(lines)}")


def test_dev_runs_everything_and_stops_cleanly(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SEARCHHUB_")},
        "SEARCHHUB_PORT": str(port),
        "SEARCHHUB_DEV_API_KEY": DEV_KEY,
        "SEARCHHUB_WORKER_METRICS_PORT": str(metrics_port),
    }
    dev = subprocess.Popen(
        [sys.executable, "-m", "searchhub", "dev"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        printed = "".join(_wait_for_line(dev.stdout, "Press Ctrl-C", timeout_s=90))
        assert f"http://127.0.0.1:{port}" in printed
        assert DEV_KEY in printed
        url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {DEV_KEY}"}
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "API never became ready"
            time.sleep(0.1)

        posted = httpx.post(f"{url}/v1/documents", json={"content": "hello from dev"}, headers=auth).json()
        deadline = time.monotonic() + 30
        while httpx.get(f"{url}{posted['status_url']}", headers=auth).json()["status"] != "indexed":
            assert time.monotonic() < deadline, "job never indexed"
            time.sleep(0.05)
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        assert 'searchhub_jobs_total{outcome="indexed"} 1.0' in metrics
        assert (tmp_path / ".searchhub" / "postgres" / "data" / "PG_VERSION").exists()
        children = _children(dev.pid)
        assert len(children) >= 4  # PostgreSQL, Redis, the API and the worker
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait(60)
    assert dev.returncode == 0
    deadline = time.monotonic() + 30
    while not all(_gone(c) for c in children):
        assert time.monotonic() < deadline, "a child of searchhub dev outlived it"
        time.sleep(0.1)
    assert _processes_under(tmp_path) == []
