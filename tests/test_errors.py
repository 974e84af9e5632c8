"""Every client mistake gets the contract's error body, the right status, and writes nothing."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.conftest import Tenant


async def _nothing_written(pool: asyncpg.Pool, tenant: Tenant) -> None:
    assert await pool.fetchval("SELECT count(*) FROM documents WHERE tenant_id = $1", tenant.id) == 0
    assert await pool.fetchval("SELECT count(*) FROM index_jobs WHERE tenant_id = $1", tenant.id) == 0


def _error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    return body["error"]


async def _raw_post(tenant: Tenant, content: bytes, content_type: str = "application/json") -> httpx.Response:
    return await tenant.client.post(
        "/v1/documents", content=content, headers={**tenant.auth, "Content-Type": content_type}
    )


async def test_malformed_json_is_400(tenant: Tenant, pool: asyncpg.Pool) -> None:
    _error(await _raw_post(tenant, b'{"content": "x"'), 400, "invalid_json")
    await _nothing_written(pool, tenant)


async def test_wrong_media_type_is_415(tenant: Tenant, pool: asyncpg.Pool) -> None:
    _error(
        await _raw_post(tenant, b"content=x", "application/x-www-form-urlencoded"),
        415,
        "unsupported_media_type",
    )
    await _nothing_written(pool, tenant)


async def test_body_over_the_limit_is_413(tenant: Tenant, pool: asyncpg.Pool) -> None:
    big = b'{"content": "' + b"a" * (10 * 1024 * 1024) + b'"}'
    _error(await _raw_post(tenant, big), 413, "payload_too_large")
    await _nothing_written(pool, tenant)


async def test_body_over_the_limit_without_content_length_is_413(tenant: Tenant, pool: asyncpg.Pool) -> None:
    async def chunks():  # chunked transfer: the size is only known while reading
        yield b'{"content": "'
        for _ in range(11):
            yield b"a" * (1024 * 1024)
        yield b'"}'

    response = await tenant.client.post(
        "/v1/documents", content=chunks(), headers={**tenant.auth, "Content-Type": "application/json"}
    )
    _error(response, 413, "payload_too_large")
    await _nothing_written(pool, tenant)


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({}, ["content"]),
        ({"content": ""}, ["content"]),
        ({"content": "   "}, ["content"]),
        ({"content": 5, "title": 7}, ["content", "title"]),
        ({"content": "x", "colour": "red"}, ["colour"]),
        ({"content": "x", "content_type": "application/pdf"}, ["content_type"]),
        ({"content": "x", "metadata": [1]}, ["metadata"]),
        ({"content": "x", "metadata": {"a": "b\u0000"}}, ["metadata.a"]),
        ({"content": "nul \u0000 inside"}, ["content"]),
        ({"content": "x", "title": "t" * 1001}, ["title"]),
        ({"content": "x", "external_id": ""}, ["external_id"]),
        (
            {"content": "x", "metadata": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": 1}}}}}}}}}},
            ["metadata"],
        ),
    ],
)
async def test_invalid_documents_are_422_naming_each_bad_field(
    tenant: Tenant, pool: asyncpg.Pool, body: dict, paths: list[str]
) -> None:
    error = _error(await tenant.post("/v1/documents", body), 422, "validation_error")

    named = [d["path"] for d in error["details"]]
    for path in paths:
        assert any(n == path or n.startswith(path + ".") for n in named), (path, error)
    assert all(isinstance(d["message"], str) and d["message"] for d in error["details"])
    await _nothing_written(pool, tenant)


async def test_lone_surrogate_is_422_not_500(tenant: Tenant, pool: asyncpg.Pool) -> None:
    error = _error(await _raw_post(tenant, b'{"content": "bad \\ud800 text"}'), 422, "validation_error")
    assert error["details"][0]["path"] == "content"
    await _nothing_written(pool, tenant)


async def test_invalid_utf8_is_400(tenant: Tenant, pool: asyncpg.Pool) -> None:
    _error(await _raw_post(tenant, b'{"content": "\xff\xfe"}'), 400, "invalid_json")
    await _nothing_written(pool, tenant)


async def test_body_that_is_not_an_object_is_422(tenant: Tenant, pool: asyncpg.Pool) -> None:
    _error(await _raw_post(tenant, b'["content"]'), 422, "validation_error")
    await _nothing_written(pool, tenant)


async def test_missing_or_unknown_key_is_401(app_client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer sh_nope"}, {"Authorization": "Basic abc"}):
        response = await app_client.get("/v1/index-jobs", headers=headers)
        _error(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_unknown_route_and_method_use_the_error_body(tenant: Tenant) -> None:
    _error(await tenant.get("/v1/nothing-here"), 404, "not_found")
    response = await tenant.client.put("/v1/documents", headers=tenant.auth)
    _error(response, 405, "method_not_allowed")


async def test_bad_idempotency_key_is_422(tenant: Tenant, pool: asyncpg.Pool) -> None:
    response = await tenant.post("/v1/documents", {"content": "x"}, **{"Idempotency-Key": "k" * 300})
    _error(response, 422, "validation_error")
    await _nothing_written(pool, tenant)
