"""The unauthenticated surface: health, readiness, metrics, OpenAPI."""

from __future__ import annotations

import httpx

from tests.conftest import Tenant


async def test_healthz(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_checks_postgres_and_redis(app_client: httpx.AsyncClient) -> None:
    response = await app_client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok"}}


async def test_metrics_count_requests_by_route_template(
    tenant: Tenant, app_client: httpx.AsyncClient
) -> None:
    await tenant.get("/v1/documents/00000000-0000-0000-0000-000000000000")

    text = (await app_client.get("/metrics")).text

    assert 'route="/v1/documents/{document_id}"' in text
    assert "searchhub_http_request_duration_seconds_bucket" in text
    assert "00000000-0000" not in text


async def test_openapi_documents_every_route_from_the_msgspec_types(app_client: httpx.AsyncClient) -> None:
    spec = (await app_client.get("/openapi.json")).json()

    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) >= {
        "/v1/documents", "/v1/documents/{document_id}", "/v1/index-jobs", "/v1/index-jobs/{job_id}",
        "/v1/index-jobs/{job_id}/retry", "/healthz", "/readyz", "/metrics", "/openapi.json",
    }  # fmt: skip
    document_in = spec["components"]["schemas"]["DocumentIn"]
    assert document_in["required"] == ["content"]
    assert set(document_in["properties"]) == {"content", "title", "external_id", "content_type", "metadata"}
