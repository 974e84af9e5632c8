"""The ``searchhub`` command: dev, migrate, api, worker, reconcile, import, tenant create."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from shared.constants import SERVICE_API, SERVICE_CLI, SERVICE_WORKER
from shared.db import UNAVAILABLE_ERRORS
from shared.logs import configure_logging
from shared.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    import asyncpg


def _run(coro: Coroutine[Any, Any, int | None]) -> int:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        return asyncio.run(coro) or 0
    return uvloop.run(coro) or 0


def _settings(service: str) -> Settings:
    settings = load_settings()
    configure_logging(service, level=settings.log_level, as_json=settings.log_json)
    return settings


def cmd_migrate(args: argparse.Namespace) -> int:
    from shared.db import connect
    from shared.migrations import migrate

    settings = _settings(SERVICE_CLI)

    async def main() -> int:
        conn = await connect(settings)
        try:
            applied = await migrate(conn)
        finally:
            await conn.close()
        print(f"applied {', '.join(applied)}" if applied else "schema is up to date")
        return 0

    return _run(main())


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import build_app

    settings = _settings(SERVICE_API)
    settings.require("database_url")
    settings.require("redis_url")
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
    }
    if settings.api_workers > 1:
        # Worker processes import the app themselves (each with its own pools and enqueuer).
        uvicorn.run("api.app:create_app", factory=True, workers=settings.api_workers, **options)
    else:
        uvicorn.run(build_app(settings), **options)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from worker.main import serve

    settings = _settings(SERVICE_WORKER)
    settings.require("database_url")
    settings.require("redis_url")
    return _run(serve(settings))


def cmd_reconcile(args: argparse.Namespace) -> int:
    from shared.db import create_pool
    from shared.queue import create_redis
    from worker.reconciler import log_summary, reconcile_once

    settings = _settings(SERVICE_CLI)
    settings.require("database_url")
    settings.require("redis_url")

    async def main() -> int:
        pool = await create_pool(settings, max_size=1, restricted=False)
        redis = create_redis(settings, timeout_s=5.0)
        try:
            summary = await reconcile_once(pool, redis, settings, dry_run=args.dry_run)
        finally:
            await redis.aclose()
            await pool.close()
        if summary is None:
            print("another reconciler is running a pass now; nothing done")
            return 0
        if not summary.dry_run:
            log_summary(summary)
        print(summary.describe())
        return 0

    return _run(main())


def cmd_tenant_create(args: argparse.Namespace) -> int:
    from searchhub.tenants import TenantExists, create_tenant

    async def run(conn: asyncpg.Connection) -> int:
        try:
            tenant_id, key = await create_tenant(conn, args.name)
        except TenantExists as exc:
            print(f"searchhub: {exc}", file=sys.stderr)
            return 1
        print(f"tenant {args.name} created with id {tenant_id}; its API key (shown once):")
        print(key)
        return 0

    return _with_owner_connection(run)


def _with_owner_connection(fn: Callable[[asyncpg.Connection], Awaitable[int]]) -> int:
    from searchhub.tenants import TenantNotFound
    from shared.db import connect

    settings = _settings(SERVICE_CLI)

    async def main() -> int:
        conn = await connect(settings)
        try:
            return await fn(conn)
        except TenantNotFound as exc:
            print(f"searchhub: {exc}", file=sys.stderr)
            return 1
        finally:
            await conn.close()

    return _run(main())


def cmd_key_create(args: argparse.Namespace) -> int:
    from searchhub.tenants import create_key

    async def run(conn: asyncpg.Connection) -> int:
        key = await create_key(conn, args.tenant)
        print(f"new API key for {args.tenant} (shown once):")
        print(key)
        return 0

    return _with_owner_connection(run)


def cmd_key_list(args: argparse.Namespace) -> int:
    from searchhub.tenants import list_keys

    def when(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"

    async def run(conn: asyncpg.Connection) -> int:
        keys = await list_keys(conn, args.tenant)
        print(f"{'PREFIX':<14} {'CREATED':<21} {'LAST USED':<21} REVOKED")
        for k in keys:
            print(f"{k.prefix:<14} {when(k.created_at):<21} {when(k.last_used_at):<21} {when(k.revoked_at)}")
        return 0

    return _with_owner_connection(run)


def cmd_key_revoke(args: argparse.Namespace) -> int:
    from searchhub.tenants import revoke_key

    async def run(conn: asyncpg.Connection) -> int:
        if not await revoke_key(conn, args.prefix):
            print(f"searchhub: no live key with prefix {args.prefix!r}", file=sys.stderr)
            return 1
        print(f"revoked {args.prefix}")
        return 0

    return _with_owner_connection(run)


def cmd_import(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from searchhub.importer import main as run_import
    from shared.settings import read_env_file

    source = read_env_file(Path(".env")) if Path(".env").is_file() else {}
    source.update(os.environ)
    values = {}
    for name in ("SEARCHHUB_API_URL", "SEARCHHUB_API_KEY"):
        if not source.get(name):
            raise SettingsError(f"{name} is required but not set")
        values[name] = source[name]
    if not values["SEARCHHUB_API_URL"].startswith(("http://", "https://")):
        raise SettingsError("SEARCHHUB_API_URL must start with http:// or https://")
    return run_import(
        args.paths, values["SEARCHHUB_API_URL"], values["SEARCHHUB_API_KEY"], wait=not args.no_wait
    )


def cmd_dev(args: argparse.Namespace) -> int:
    from searchhub.dev import run_dev

    return run_dev(_settings(SERVICE_CLI))


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="searchhub", description="Search Hub: document ingestion and search.")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("dev", help="run the whole system on embedded PostgreSQL and Redis").set_defaults(
        fn=cmd_dev
    )
    sub.add_parser("migrate", help="apply the SQL migrations").set_defaults(fn=cmd_migrate)
    sub.add_parser("api", help="serve the HTTP API").set_defaults(fn=cmd_api)
    sub.add_parser("worker", help="run one index worker").set_defaults(fn=cmd_worker)
    reconcile = sub.add_parser(
        "reconcile", help="one reconciler pass: take back dead workers' jobs, re-deliver lost ones"
    )
    reconcile.add_argument(
        "--dry-run", action="store_true", help="only count what a pass would do; change nothing"
    )
    reconcile.set_defaults(fn=cmd_reconcile)
    bulk = sub.add_parser(
        "import",
        help="bulk-load files, folders or NDJSON (- for stdin) through the batch endpoint",
        description="Needs SEARCHHUB_API_URL and SEARCHHUB_API_KEY. Re-running with the same input "
        "does not duplicate documents.",
    )
    bulk.add_argument(
        "paths", nargs="+", metavar="PATH", help="a file, a folder, a .ndjson/.jsonl file, or -"
    )
    bulk.add_argument("--no-wait", action="store_true", help="do not follow the jobs to the end")
    bulk.set_defaults(fn=cmd_import)
    tenant = sub.add_parser("tenant", help="manage tenants").add_subparsers(
        dest="tenant_command", required=True
    )
    create = tenant.add_parser("create", help="create a tenant and print its first API key")
    create.add_argument("name")
    create.set_defaults(fn=cmd_tenant_create)
    key = sub.add_parser("key", help="manage API keys").add_subparsers(dest="key_command", required=True)
    key_create = key.add_parser("create", help="issue another key for a tenant (name or id)")
    key_create.add_argument("tenant")
    key_create.set_defaults(fn=cmd_key_create)
    key_list = key.add_parser("list", help="a tenant's keys: prefixes, created, last used, revoked")
    key_list.add_argument("tenant")
    key_list.set_defaults(fn=cmd_key_list)
    key_revoke = key.add_parser("revoke", help="revoke a key by its prefix; refused from the next request on")
    key_revoke.add_argument("prefix")
    key_revoke.set_defaults(fn=cmd_key_revoke)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.fn(args)
    except SettingsError as exc:
        print(f"searchhub: {exc}", file=sys.stderr)
        return 2
    except UNAVAILABLE_ERRORS as exc:
        print(f"searchhub: cannot reach PostgreSQL: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    except RedisError as exc:
        print(f"searchhub: cannot reach Redis: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
