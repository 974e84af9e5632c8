"""POST → rows in PostgreSQL → arq → worker → indexed, through HTTP and SQL."""

from __future__ import annotations

import uuid

import asyncpg

from tests.conftest import Tenant
from tests.support import eventually


async def test_post_answers_202_and_commits_document_and_queued_job(
    tenant: Tenant, pool: asyncpg.Pool
) -> None:
    response = await tenant.post("/v1/documents", {"content": "hello world", "title": "Greeting"})

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert body["status_url"] == f"/v1/index-jobs/{body['job_id']}"
    assert response.headers["location"] == body["status_url"]
    doc = await pool.fetchrow("SELECT * FROM documents WHERE id = $1", uuid.UUID(body["document_id"]))
    assert doc["tenant_id"] == tenant.id
    assert doc["content"] == "hello world"
    assert doc["title"] == "Greeting"
    assert doc["content_type"] == "text/plain"
    assert doc["version"] == 1
    job = await pool.fetchrow("SELECT * FROM index_jobs WHERE id = $1", uuid.UUID(body["job_id"]))
    assert job["status"] == "queued"
    assert job["document_id"] == doc["id"]
    assert job["attempts"] == 0


async def test_worker_moves_job_to_indexed(tenant: Tenant, worker: None, pool: asyncpg.Pool) -> None:
    body = (await tenant.post("/v1/documents", {"content": "to be indexed"})).json()

    job = await eventually(
        lambda: tenant.job(body["job_id"]), lambda j: j["status"] == "indexed", what="indexed"
    )

    assert job["attempts"] == 1
    assert job["error"] is None
    assert job["document_version"] == 1
    assert job["started_at"] is not None
    assert job["finished_at"] is not None
    doc = (await tenant.get(f"/v1/documents/{body['document_id']}")).json()
    assert doc["status"] == "indexed"
    assert doc["job_id"] == body["job_id"]
    assert doc["indexed_at"] is not None
    assert (
        await pool.fetchval(
            "SELECT indexed_version FROM documents WHERE id = $1", uuid.UUID(body["document_id"])
        )
        == 1
    )
