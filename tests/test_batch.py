"""POST /v1/documents/batch: all valid or nothing written, one statement, items in request order."""

from __future__ import annotations

import uuid

import asyncpg
from arq.connections import ArqRedis

from shared.constants import QUEUE_NAME
from tests.conftest import Tenant
from tests.support import eventually


def docs(n: int, **extra: object) -> list[dict]:
    return [{"content": f"document number {i}", "title": f"t{i}", **extra} for i in range(n)]


async def count_documents(pool: asyncpg.Pool, tenant: Tenant) -> int:
    return await pool.fetchval("SELECT count(*) FROM documents WHERE tenant_id = $1", tenant.id)


async def test_batch_writes_every_document_and_job_and_answers_in_request_order(
    tenant: Tenant, pool: asyncpg.Pool, redis: ArqRedis
) -> None:
    batch = [
        {"content": "first", "external_id": "a"},
        {"content": "second", "title": "Two", "metadata": {"k": [1, 2]}},
        {"content": "# third", "content_type": "text/markdown", "external_id": "c"},
    ]

    response = await tenant.post("/v1/documents/batch", {"documents": batch})

    assert response.status_code == 202, response.text
    items = response.json()["items"]
    assert len(items) == 3
    for item, sent in zip(items, batch, strict=True):
        assert item["status"] == "queued"
        assert item["status_url"] == f"/v1/index-jobs/{item['job_id']}"
        row = await pool.fetchrow(
            "SELECT d.*, j.status, j.document_version FROM documents d"
            " JOIN index_jobs j ON j.document_id = d.id WHERE d.id = $1 AND j.id = $2",
            uuid.UUID(item["document_id"]),
            uuid.UUID(item["job_id"]),
        )
        assert row["tenant_id"] == tenant.id
        assert row["content"] == sent["content"]
        assert row["external_id"] == sent.get("external_id")
        assert row["title"] == sent.get("title")
        assert row["content_type"] == sent.get("content_type", "text/plain")
        assert row["metadata"] == sent.get("metadata", {})
        assert (row["version"], row["status"], row["document_version"]) == (1, "queued", 1)
        # Enqueued before the 202, all in one round trip.
        assert await redis.zscore(QUEUE_NAME, item["job_id"]) is not None


async def test_one_bad_item_writes_nothing_and_names_every_bad_field(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    batch = docs(5)
    batch[1]["content"] = "   "
    batch[3] = {"content": 7, "colour": "red"}
    batch[4]["content_type"] = "application/pdf"

    response = await tenant.post("/v1/documents/batch", {"documents": batch})

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    paths = {d["path"] for d in error["details"]}
    assert paths == {
        "documents[1].content",
        "documents[3].content",
        "documents[3].colour",
        "documents[4].content_type",
    }
    assert await count_documents(pool, tenant) == 0


async def test_valid_types_but_bad_values_are_named_by_index(tenant: Tenant, pool: asyncpg.Pool) -> None:
    batch = docs(3)
    batch[2]["title"] = "x" * 5000
    batch[0]["metadata"] = {"bad": "nul \x00 inside"}

    response = await tenant.post("/v1/documents/batch", {"documents": batch})

    assert response.status_code == 422
    paths = {d["path"] for d in response.json()["error"]["details"]}
    assert paths == {"documents[2].title", "documents[0].metadata.bad"}
    assert await count_documents(pool, tenant) == 0


async def test_batch_size_is_one_to_the_limit(tenant: Tenant, pool: asyncpg.Pool) -> None:
    for batch in ([], docs(1001)):
        response = await tenant.post("/v1/documents/batch", {"documents": batch})
        assert response.status_code == 422
        assert [d["path"] for d in response.json()["error"]["details"]] == ["documents"]
    response = await tenant.post("/v1/documents/batch", {"documents": docs(1000)})
    assert response.status_code == 202
    assert len(response.json()["items"]) == 1000
    assert await count_documents(pool, tenant) == 1000


async def test_body_shape_errors(tenant: Tenant) -> None:
    assert (await tenant.post("/v1/documents/batch", {"docs": []})).status_code == 422
    assert (await tenant.post("/v1/documents/batch", [])).status_code == 422
    response = await tenant.client.post(
        "/v1/documents/batch", content=b"{nope", headers={**tenant.auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    response = await tenant.client.post("/v1/documents/batch", content=b"{}", headers=tenant.auth)
    assert response.status_code == 415
    response = await tenant.client.post("/v1/documents/batch", json={"documents": docs(1)})
    assert response.status_code == 401


async def test_a_repeated_external_id_within_one_batch_is_refused(tenant: Tenant, pool: asyncpg.Pool) -> None:
    batch = [
        {"content": "v1", "external_id": "same"},
        {"content": "x"},
        {"content": "v2", "external_id": "same"},
    ]

    response = await tenant.post("/v1/documents/batch", {"documents": batch})

    assert response.status_code == 422
    [detail] = response.json()["error"]["details"]
    assert detail["path"] == "documents[2].external_id"
    assert "documents[0]" in detail["message"]
    assert await count_documents(pool, tenant) == 0


async def test_known_external_ids_become_new_versions_and_join_the_queued_job(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    first = (await tenant.post("/v1/documents", {"content": "v1", "external_id": "doc-a"})).json()

    response = await tenant.post(
        "/v1/documents/batch",
        {
            "documents": [
                {"content": "new", "external_id": "doc-b"},
                {"content": "v2", "external_id": "doc-a"},
            ]
        },
    )

    assert response.status_code == 202
    new, again = response.json()["items"]
    assert again["document_id"] == first["document_id"]
    assert again["job_id"] == first["job_id"]  # still queued: joined, not a second queued job
    assert new["document_id"] != first["document_id"]
    row = await pool.fetchrow(
        "SELECT d.version, d.content, j.document_version FROM documents d JOIN index_jobs j"
        " ON j.document_id = d.id WHERE d.id = $1",
        uuid.UUID(first["document_id"]),
    )
    assert tuple(row) == (2, "v2", 2)
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM index_jobs WHERE document_id = $1", uuid.UUID(first["document_id"])
        )
        == 1
    )


async def test_external_ids_are_per_tenant(tenant: Tenant, other_tenant: Tenant) -> None:
    body = {"documents": [{"content": "x", "external_id": "k"}]}
    a = (await tenant.post("/v1/documents/batch", body)).json()
    b = (await other_tenant.post("/v1/documents/batch", body)).json()
    assert a["items"][0]["document_id"] != b["items"][0]["document_id"]


async def test_idempotency_key_replays_the_batch_answer_and_writes_nothing(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    body = {"documents": docs(3)}
    first = await tenant.post("/v1/documents/batch", body, **{"Idempotency-Key": "batch-1"})
    again = await tenant.post("/v1/documents/batch", body, **{"Idempotency-Key": "batch-1"})
    other = await tenant.post("/v1/documents/batch", {"documents": docs(2)}, **{"Idempotency-Key": "batch-1"})

    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert other.status_code == 409
    assert await count_documents(pool, tenant) == 3


async def test_worker_indexes_a_whole_batch(tenant: Tenant, worker: None, pool: asyncpg.Pool) -> None:
    items = (await tenant.post("/v1/documents/batch", {"documents": docs(50)})).json()["items"]
    job_ids = [uuid.UUID(i["job_id"]) for i in items]

    await eventually(
        lambda: pool.fetchval(
            "SELECT count(*) FROM index_jobs WHERE id = ANY($1) AND status = 'indexed'", job_ids
        ),
        lambda n: n == 50,
        what="all 50 indexed",
    )
