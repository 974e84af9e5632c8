"""`searchhub dev`: the whole system on one machine, no outside services.

Embedded PostgreSQL and Redis under ./.searchhub/, migrations, a dev tenant, then the API and one
worker as child processes. Ctrl-C (or SIGTERM) stops the children, then the servers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import msgspec

from searchhub.embedded import EmbeddedPostgres, EmbeddedRedis
from searchhub.tenants import ensure_dev_tenant
from shared.db import connect
from shared.migrations import migrate
from shared.settings import Settings

STATE_DIR = Path(".searchhub")
DATABASE = "searchhub"
DEV_PG_PORT = 54329
DEV_REDIS_PORT = 63790


async def _prepare(pg: EmbeddedPostgres, settings: Settings) -> str:
    admin = await asyncpg.connect(pg.url())
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DATABASE):
            await admin.execute(f'CREATE DATABASE "{DATABASE}"')
    finally:
        await admin.close()
    conn = await connect(settings)
    try:
        await migrate(conn)
        return await ensure_dev_tenant(conn, settings.dev_api_key)
    finally:
        await conn.close()


def _free_or_any(port: int) -> int | None:
    import socket

    with socket.socket() as s:
        return port if s.connect_ex(("127.0.0.1", port)) != 0 else None


def run_dev(settings: Settings) -> int:
    STATE_DIR.mkdir(exist_ok=True)
    pg = EmbeddedPostgres(STATE_DIR / "postgres", _free_or_any(DEV_PG_PORT))
    redis = EmbeddedRedis(STATE_DIR / "redis", _free_or_any(DEV_REDIS_PORT))
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        print("starting embedded PostgreSQL and Redis under ./.searchhub/ …", flush=True)
        pg.start()
        redis.start()
        env = {
            **os.environ,
            "SEARCHHUB_DATABASE_URL": pg.url(DATABASE),
            "SEARCHHUB_REDIS_URL": redis.url(),
        }
        key = asyncio.run(
            _prepare(pg, msgspec.structs.replace(settings, database_url=env["SEARCHHUB_DATABASE_URL"]))
        )
        env["SEARCHHUB_DEV_API_KEY"] = key
        for command in ("api", "worker"):
            # Own process groups: a Ctrl-C in the terminal reaches us, and we stop them in order.
            children.append(
                subprocess.Popen(
                    [sys.executable, "-m", "searchhub", command], env=env, start_new_session=True
                )
            )
        url = f"http://{settings.host}:{settings.port}"
        print(
            f"\nSearch Hub is running.\n  API:          {url}\n  dev API key:  {key}\n"
            f"  PostgreSQL:   {pg.url(DATABASE)}\n  Redis:        {redis.url()}\n"
            f"  try:          curl -H 'Authorization: Bearer {key}' {url}/readyz\n"
            "Press Ctrl-C to stop.\n",
            flush=True,
        )
        while not stopping:
            if any(child.poll() is not None for child in children):
                print("a child process exited; stopping", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
        redis.stop()
        pg.stop()
        print("stopped", flush=True)
