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


async def test_metrics_count_the_directly_called_ingest_routes_by_status(
    tenant: Tenant, app_client: httpx.AsyncClient
) -> None:
    def posts(text: str, status: str) -> float:
        label = f'searchhub_http_requests_total{{method="POST",route="/v1/documents",status="{status}"}} '
        line = next((x for x in text.splitlines() if x.startswith(label)), label + "0")
        return float(line.rsplit(" ", 1)[1])

    before = (await app_client.get("/metrics")).text
    assert (await tenant.post("/v1/documents", {"content": "counted"})).status_code == 202
    assert (await tenant.post("/v1/documents", {"title": "no content"})).status_code == 422

    after = (await app_client.get("/metrics")).text
    assert posts(after, "202") == posts(before, "202") + 1
    assert posts(after, "422") == posts(before, "422") + 1
    assert 'searchhub_http_request_duration_seconds_count{method="POST",route="/v1/documents"}' in after


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
