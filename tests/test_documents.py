"""POST/GET/DELETE /v1/documents: versions, joining a queued job, idempotency, isolation."""

from __future__ import annotations

import uuid

import asyncpg

from tests.conftest import Tenant
from tests.support import eventually


async def _jobs_of(pool: asyncpg.Pool, document_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM index_jobs WHERE document_id = $1 ORDER BY created_at", uuid.UUID(document_id)
    )


async def test_repost_of_external_id_while_queued_joins_the_queued_job(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    first = (await tenant.post("/v1/documents", {"content": "v1", "external_id": "doc-1"})).json()
    second = (await tenant.post("/v1/documents", {"content": "v2", "external_id": "doc-1"})).json()

    assert second["document_id"] == first["document_id"]
    assert second["job_id"] == first["job_id"]
    jobs = await _jobs_of(pool, first["document_id"])
    assert len(jobs) == 1
    assert jobs[0]["status"] == "queued"
    assert jobs[0]["document_version"] == 2
    doc = (await tenant.get(f"/v1/documents/{first['document_id']}")).json()
    assert doc["version"] == 2
    assert doc["external_id"] == "doc-1"
    assert (
        await pool.fetchval("SELECT content FROM documents WHERE id = $1", uuid.UUID(first["document_id"]))
        == "v2"
    )


async def test_repost_after_indexing_makes_a_new_job_for_the_new_version(
    tenant: Tenant, worker: None, pool: asyncpg.Pool
) -> None:
    first = (await tenant.post("/v1/documents", {"content": "v1", "external_id": "doc-2"})).json()
    await eventually(lambda: tenant.job(first["job_id"]), lambda j: j["status"] == "indexed")

    second = (await tenant.post("/v1/documents", {"content": "v2", "external_id": "doc-2"})).json()

    assert second["document_id"] == first["document_id"]
    assert second["job_id"] != first["job_id"]
    job = await eventually(lambda: tenant.job(second["job_id"]), lambda j: j["status"] == "indexed")
    assert job["document_version"] == 2
    assert (
        await pool.fetchval(
            "SELECT indexed_version FROM documents WHERE id = $1", uuid.UUID(first["document_id"])
        )
        == 2
    )


async def test_same_external_id_in_two_tenants_is_two_documents(tenant: Tenant, other_tenant: Tenant) -> None:
    mine = (await tenant.post("/v1/documents", {"content": "a", "external_id": "shared"})).json()
    theirs = (await other_tenant.post("/v1/documents", {"content": "b", "external_id": "shared"})).json()

    assert mine["document_id"] != theirs["document_id"]


async def test_get_document_returns_the_contract_fields(tenant: Tenant) -> None:
    posted = (
        await tenant.post(
            "/v1/documents",
            {
                "content": "# Hi",
                "title": "T",
                "content_type": "text/markdown",
                "metadata": {"lang": "en", "n": [1, 2]},
            },
        )
    ).json()

    doc = (await tenant.get(f"/v1/documents/{posted['document_id']}")).json()

    assert doc == {
        "document_id": posted["document_id"],
        "external_id": None,
        "title": "T",
        "content_type": "text/markdown",
        "metadata": {"lang": "en", "n": [1, 2]},
        "version": 1,
        "status": "queued",
        "job_id": posted["job_id"],
        "created_at": doc["created_at"],
        "updated_at": doc["updated_at"],
        "indexed_at": None,
    }
    assert doc["created_at"].endswith("Z")


async def test_another_tenants_document_is_not_found(tenant: Tenant, other_tenant: Tenant) -> None:
    posted = (await tenant.post("/v1/documents", {"content": "secret"})).json()

    for response in (
        await other_tenant.get(f"/v1/documents/{posted['document_id']}"),
        await other_tenant.delete(f"/v1/documents/{posted['document_id']}"),
        await other_tenant.get(f"/v1/index-jobs/{posted['job_id']}"),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
    assert (await tenant.get(f"/v1/documents/{posted['document_id']}")).status_code == 200


async def test_ids_that_are_not_uuids_are_not_found(tenant: Tenant) -> None:
    for path in ("/v1/documents/not-a-uuid", "/v1/index-jobs/123"):
        response = await tenant.get(path)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"


async def test_delete_removes_document_and_its_jobs(tenant: Tenant, pool: asyncpg.Pool) -> None:
    posted = (await tenant.post("/v1/documents", {"content": "bye"})).json()

    response = await tenant.delete(f"/v1/documents/{posted['document_id']}")

    assert response.status_code == 204
    assert (await tenant.get(f"/v1/documents/{posted['document_id']}")).status_code == 404
    assert await _jobs_of(pool, posted["document_id"]) == []
    assert (await tenant.delete(f"/v1/documents/{posted['document_id']}")).status_code == 404


async def test_idempotency_key_repeat_returns_first_answer_and_writes_nothing(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    body = {"content": "once", "metadata": {"a": 1}}
    first = await tenant.post("/v1/documents", body, **{"Idempotency-Key": "k-1"})
    count = await pool.fetchval("SELECT count(*) FROM documents WHERE tenant_id = $1", tenant.id)

    again = await tenant.post("/v1/documents", body, **{"Idempotency-Key": "k-1"})

    assert again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert await pool.fetchval("SELECT count(*) FROM documents WHERE tenant_id = $1", tenant.id) == count == 1
    assert await pool.fetchval("SELECT count(*) FROM index_jobs WHERE tenant_id = $1", tenant.id) == 1


async def test_idempotency_key_with_another_body_is_a_conflict(tenant: Tenant, pool: asyncpg.Pool) -> None:
    await tenant.post("/v1/documents", {"content": "one"}, **{"Idempotency-Key": "k-2"})

    response = await tenant.post("/v1/documents", {"content": "two"}, **{"Idempotency-Key": "k-2"})

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert await pool.fetchval("SELECT count(*) FROM documents WHERE tenant_id = $1", tenant.id) == 1


async def test_idempotency_keys_are_per_tenant(tenant: Tenant, other_tenant: Tenant) -> None:
    mine = await tenant.post("/v1/documents", {"content": "x"}, **{"Idempotency-Key": "same"})
    theirs = await other_tenant.post("/v1/documents", {"content": "y"}, **{"Idempotency-Key": "same"})

    assert theirs.status_code == 202
    assert theirs.json()["document_id"] != mine.json()["document_id"]
