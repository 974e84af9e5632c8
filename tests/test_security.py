"""Hostile and careless clients: backpressure, unexpected errors, what logs may never hold."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import asyncpg
import httpx
import msgspec
import pytest
from loguru import logger

from api import routes
from api.app import build_app
from shared.keys import hash_key
from shared.settings import Settings
from tests.conftest import Tenant, _new_tenant
from tests.support import eventually


@pytest.fixture
async def strict_client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An API whose tenants may each have 3 queued jobs, counted afresh on every request."""
    app = build_app(msgspec.structs.replace(settings, max_queued_per_tenant=3, backpressure_recheck_s=0))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        yield client


@pytest.fixture
def captured_logs() -> AsyncIterator[io.StringIO]:
    stream = io.StringIO()
    sink = logger.add(stream, level="DEBUG", format="{message} {extra} {exception}")
    yield stream
    logger.remove(sink)


async def test_tenant_over_its_queued_limit_gets_429_and_others_do_not(
    strict_client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    busy = await _new_tenant(pool, strict_client)
    calm = await _new_tenant(pool, strict_client)
    for i in range(3):
        assert (await busy.post("/v1/documents", {"content": f"doc {i}"})).status_code == 202

    refused = await busy.post("/v1/documents", {"content": "one too many"})

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) > 0
    assert await pool.fetchval("SELECT count(*) FROM documents WHERE tenant_id = $1", busy.id) == 3
    assert (await calm.post("/v1/documents", {"content": "unaffected"})).status_code == 202


async def test_unexpected_error_is_a_500_with_a_request_id_and_no_trace(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, captured_logs: io.StringIO
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("internal detail that must not leak")

    monkeypatch.setattr(routes.documents, "accept_document", broken)

    response = await tenant.post("/v1/documents", {"content": "x"})

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    request_id = response.headers["x-request-id"]
    assert request_id in error["message"]
    assert "internal detail" not in response.text
    assert "Traceback" not in response.text
    log = captured_logs.getvalue()
    assert request_id in log
    assert "internal detail that must not leak" in log  # the trace is for operators


async def test_logs_never_hold_keys_or_document_text(
    tenant: Tenant, worker: None, captured_logs: io.StringIO
) -> None:
    secret_text = "confidential-merger-plans-7f3a"
    posted = (await tenant.post("/v1/documents", {"content": secret_text, "title": secret_text})).json()
    await eventually(lambda: tenant.job(posted["job_id"]), lambda j: j["status"] == "indexed")
    await tenant.client.get("/v1/index-jobs", headers={"Authorization": "Bearer sh_wrong-key-value"})

    log = captured_logs.getvalue()

    assert posted["job_id"] in log  # the job's end was logged...
    assert secret_text not in log  # ...without its text
    assert tenant.key not in log
    assert "sh_wrong-key-value" not in log


async def test_metrics_never_hold_keys(tenant: Tenant, app_client: httpx.AsyncClient) -> None:
    await tenant.get("/v1/index-jobs")
    assert tenant.key not in (await app_client.get("/metrics")).text


async def test_remembered_key_is_refused_as_soon_as_it_is_revoked_in_sql(
    tenant: Tenant, app_client: httpx.AsyncClient, pool: asyncpg.Pool
) -> None:
    keys = app_client._transport.app.state.ctx.keys  # type: ignore[attr-defined]
    await eventually(lambda: _async(keys.listening), bool, what="the revocation listener connected")
    assert (await tenant.get("/v1/index-jobs")).status_code == 200
    assert keys.get(hash_key(tenant.key)) == tenant.id  # remembered: the next request skips the lookup

    await pool.execute("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1", tenant.id)

    refused = await eventually(
        lambda: tenant.get("/v1/index-jobs"), lambda r: r.status_code == 401, timeout_s=5, what="refused"
    )
    assert refused.json()["error"]["code"] == "unauthorized"


async def _async(value: object) -> object:
    return value
