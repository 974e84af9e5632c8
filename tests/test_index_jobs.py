"""GET /v1/index-jobs: newest first, status filter, cursor pagination."""

from __future__ import annotations

from tests.conftest import Tenant


async def test_list_is_newest_first_and_paginates_without_gaps(tenant: Tenant) -> None:
    posted = [
        (await tenant.post("/v1/documents", {"content": f"doc {i}"})).json()["job_id"] for i in range(7)
    ]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await tenant.get("/v1/index-jobs", **params)).json()
        seen += [item["job_id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == list(reversed(posted))
    assert pages == 3


async def test_status_filter_takes_a_comma_list(tenant: Tenant, other_tenant: Tenant) -> None:
    await tenant.post("/v1/documents", {"content": "q"})
    await other_tenant.post("/v1/documents", {"content": "not mine"})

    queued = (await tenant.get("/v1/index-jobs", status="queued,failed")).json()
    failed = (await tenant.get("/v1/index-jobs", status="failed")).json()

    assert [item["status"] for item in queued["items"]] == ["queued"]
    assert failed == {"items": [], "next_cursor": None}


async def test_bad_list_parameters_are_422(tenant: Tenant) -> None:
    for params in ({"status": "done"}, {"limit": 0}, {"limit": "many"}, {"cursor": "garbage!"}):
        response = await tenant.get("/v1/index-jobs", **params)
        assert response.status_code == 422, params
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert error["details"][0]["path"] == next(iter(params))


async def test_job_has_the_contract_fields(tenant: Tenant) -> None:
    posted = (await tenant.post("/v1/documents", {"content": "fields"})).json()

    job = await tenant.job(posted["job_id"])

    assert set(job) == {
        "job_id", "document_id", "document_version", "status", "attempts", "error",
        "created_at", "started_at", "finished_at",
    }  # fmt: skip
    assert job["status"] == "queued"
    assert job["attempts"] == 0
