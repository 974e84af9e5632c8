"""Fixtures: real PostgreSQL and Redis (embedded, or outside servers named by
SEARCHHUB_TEST_DATABASE_URL / SEARCHHUB_TEST_REDIS_URL), the app in process, workers in process or
as real processes."""

from __future__ import annotations

import asyncio
import os
import secrets
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import msgspec
import pytest
from arq.connections import ArqRedis

from api.app import build_app
from searchhub.embedded import EmbeddedPostgres, EmbeddedRedis
from searchhub.tenants import create_tenant
from shared.db import create_pool
from shared.migrations import migrate
from shared.queue import create_redis
from shared.settings import Settings
from worker.context import WorkerContext
from worker.main import _stop_gracefully
from worker.settings import build_worker


@dataclass
class Servers:
    pg: EmbeddedPostgres | None
    redis: EmbeddedRedis | None
    admin_url: str
    redis_url: str


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = Path(tmp_path_factory.mktemp("servers"))
    pg = redis = None
    admin_url = os.environ.get("SEARCHHUB_TEST_DATABASE_URL")
    redis_url = os.environ.get("SEARCHHUB_TEST_REDIS_URL")
    if not admin_url:
        pg = EmbeddedPostgres(root / "postgres", durable=False)
        pg.start()
        admin_url = pg.url()
    if not redis_url:
        redis = EmbeddedRedis(root / "redis")
        redis.start()
        redis_url = redis.url()
    yield Servers(pg, redis, admin_url, redis_url)
    if redis is not None:
        redis.stop()
    if pg is not None:
        pg.remove()


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
async def database_url(servers: Servers) -> AsyncIterator[str]:
    """A fresh database per test session, migrated."""
    name = f"searchhub_test_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(servers.admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = _with_database(servers.admin_url, name)
    conn = await asyncpg.connect(url)
    await migrate(conn)
    await conn.close()
    yield url
    admin = await asyncpg.connect(servers.admin_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


@pytest.fixture(scope="session")
def settings(database_url: str, servers: Servers) -> Settings:
    return Settings(
        database_url=database_url,
        redis_url=servers.redis_url,
        retry_backoff_s=0.05,
        processing_lease_s=2.0,
        reconcile_interval_s=0.5,
        worker_metrics_port=0,
        worker_poll_delay_s=0.01,
        worker_shutdown_grace_s=2.0,
    )


@pytest.fixture(scope="session")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """The schema owner's view, as a DBA sees it: not bound by row-level security."""
    p = await create_pool(settings, restricted=False)
    yield p
    await p.close()


@pytest.fixture(scope="session")
async def app_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """What the API and workers use: the restricted role, bound to one tenant per connection."""
    p = await create_pool(settings)
    yield p
    await p.close()


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    """A client on the test Redis, emptied before each test so queues start clean."""
    r = create_redis(settings)
    await r.flushdb()
    yield r
    await r.aclose()


@pytest.fixture(scope="session")
async def app_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://searchhub.test") as client:
            yield client


@dataclass
class Tenant:
    id: uuid.UUID
    key: str
    client: httpx.AsyncClient

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def post(self, path: str, body: object, **headers: str) -> httpx.Response:
        return await self.client.post(
            path,
            content=msgspec.json.encode(body),
            headers={**self.auth, "Content-Type": "application/json", **headers},
        )

    async def get(self, path: str, **params: object) -> httpx.Response:
        return await self.client.get(path, headers=self.auth, params=params or None)

    async def delete(self, path: str) -> httpx.Response:
        return await self.client.delete(path, headers=self.auth)

    async def job(self, job_id: object) -> dict:
        response = await self.get(f"/v1/index-jobs/{job_id}")
        assert response.status_code == 200, response.text
        return response.json()


async def _new_tenant(pool: asyncpg.Pool, client: httpx.AsyncClient) -> Tenant:
    async with pool.acquire() as conn:
        tenant_id, key = await create_tenant(conn, f"tenant-{secrets.token_hex(6)}")
    return Tenant(tenant_id, key, client)


@pytest.fixture
async def tenant(pool: asyncpg.Pool, app_client: httpx.AsyncClient, redis: ArqRedis) -> Tenant:
    """A fresh tenant: each test sees only its own documents and jobs."""
    return await _new_tenant(pool, app_client)


@pytest.fixture
async def other_tenant(pool: asyncpg.Pool, app_client: httpx.AsyncClient) -> Tenant:
    return await _new_tenant(pool, app_client)


@pytest.fixture
async def worker(settings: Settings, app_pool: asyncpg.Pool, redis: ArqRedis) -> AsyncIterator[None]:
    """An arq worker running in this event loop, as `searchhub worker` runs it."""
    app = WorkerContext(settings=settings, pool=app_pool)
    w = build_worker(settings, app, create_redis(settings))
    run = asyncio.create_task(w.async_run())
    yield
    await _stop_gracefully(w, run, grace_s=2.0)
    await app.close()
