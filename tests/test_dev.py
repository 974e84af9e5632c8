"""`searchhub dev` as a user runs it: up with embedded servers, then Ctrl-C stops every child."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from searchhub.embedded import free_port

pytestmark = pytest.mark.chaos


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


def _wait_for(check, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout_s} s")
        time.sleep(0.1)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_dev_serves_and_ctrl_c_stops_all_its_children() -> None:
    # Not pytest's tmp_path: a pytest session starting meanwhile resets that tree to mode 0700,
    # which the PostgreSQL user (when we run as root) could then no longer traverse.
    tmp_path = Path(tempfile.mkdtemp(prefix="searchhub-dev-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEARCHHUB_")}
    env |= {"SEARCHHUB_PORT": str(port), "SEARCHHUB_WORKER_METRICS_PORT": "0"}
    out = (tmp_path / "dev.log").open("wb")
    dev = subprocess.Popen(
        [sys.executable, "-m", "searchhub", "dev"],
        cwd=tmp_path,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    log = tmp_path / "dev.log"
    try:
        _wait_for(lambda: "Search Hub is running" in log.read_text() or dev.poll() is not None, 120, "dev up")
        assert dev.poll() is None, log.read_text()[-3000:]

        def ready() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        _wait_for(ready, 60, "/readyz 200")
        children = _children(dev.pid)
        assert len(children) >= 4  # PostgreSQL, Redis, the API and the worker

        dev.send_signal(signal.SIGINT)
        assert dev.wait(60) == 0, log.read_text()[-3000:]
        _wait_for(lambda: all(_gone(c) for c in children), 30, "every child stopped")
    finally:
        if dev.poll() is None:
            dev.kill()
            dev.wait()
        out.close()
        shutil.rmtree(tmp_path, ignore_errors=True)
