"""The ``searchhub`` command: dev, migrate, api, worker, reconcile, import, tenant create."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from shared.constants import SERVICE_API, SERVICE_CLI, SERVICE_WORKER
from shared.db import UNAVAILABLE_ERRORS
from shared.logs import configure_logging
from shared.settings import Settings, SettingsError, load_settings


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


def cmd_tenant_create(args: argparse.Namespace) -> int:
    from searchhub.tenants import TenantExists, create_tenant
    from shared.db import connect

    settings = _settings(SERVICE_CLI)

    async def main() -> int:
        conn = await connect(settings)
        try:
            tenant_id, key = await create_tenant(conn, args.name)
        except TenantExists as exc:
            print(f"searchhub: {exc}", file=sys.stderr)
            return 1
        finally:
            await conn.close()
        print(f"tenant {args.name} created with id {tenant_id}; its API key (shown once):")
        print(key)
        return 0

    return _run(main())


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
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
