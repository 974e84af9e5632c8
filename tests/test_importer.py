"""`searchhub import`: reading inputs, deriving external_ids, batching, and one real import."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest
from rich.console import Console

from api.app import build_app
from searchhub import importer
from searchhub.importer import Problem, batches, idempotency_key, read_inputs, run_import
from shared.settings import Settings
from tests.conftest import Tenant


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_folders_are_walked_in_order_with_path_external_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "docs" / "b.md", "# B")
    write(tmp_path / "docs" / "a.txt", "plain a")
    write(tmp_path / "docs" / "sub" / "c.html", "<p>c</p>")
    write(tmp_path / "docs" / ".hidden", "no")
    write(tmp_path / "docs" / "blob.bin", b"\x00\x01")
    write(tmp_path / "docs" / "empty.txt", "  \n")

    entries = list(read_inputs(["docs"]))

    docs = [e for e in entries if not isinstance(e, Problem)]
    assert [d["external_id"] for d in docs] == ["docs/a.txt", "docs/b.md", "docs/sub/c.html"]
    assert [d["content_type"] for d in docs] == ["text/plain", "text/markdown", "text/html"]
    assert docs[1]["title"] == "b"
    assert docs[0]["content"] == "plain a"
    problems = {Path(e.where).name: e.message for e in entries if isinstance(e, Problem)}
    assert set(problems) == {"blob.bin", "empty.txt"}


def test_ndjson_lines_keep_their_external_id_or_get_one_from_their_content(tmp_path: Path) -> None:
    lines = [
        {"content": "one", "external_id": "mine-1", "metadata": {"a": 1}, "ignored": True},
        {"content": "two", "title": "Two"},
        "not an object",
    ]
    path = write(tmp_path / "in.ndjson", "\n".join(json.dumps(x) for x in lines) + "\n\n{broken\n")

    entries = list(read_inputs([str(path)]))

    first, second, bad_line, broken = entries
    assert first == {"content": "one", "external_id": "mine-1", "metadata": {"a": 1}}
    assert second["external_id"].startswith("sha256:")
    assert isinstance(bad_line, Problem)
    assert bad_line.where.endswith(":3")
    assert isinstance(broken, Problem)
    assert broken.where.endswith(":5")
    # The same content gets the same id on every run, and from stdin too.
    again = list(read_inputs(["-"], stdin=io.BytesIO(json.dumps(lines[1]).encode() + b"\n")))
    assert again[0]["external_id"] == second["external_id"]


def test_missing_paths_are_reported() -> None:
    [problem] = list(read_inputs(["/no/such/path"]))
    assert isinstance(problem, Problem)


def test_batches_are_bounded_and_never_repeat_an_external_id() -> None:
    docs = [{"content": str(i), "external_id": f"id{i % 7}"} for i in range(20)]
    result = list(batches(docs, max_documents=5))
    assert [d for b in result for d in b] == docs
    for batch in result:
        assert len(batch) <= 5
        ids = [d["external_id"] for d in batch]
        assert len(ids) == len(set(ids))
    assert list(batches([{"content": "x" * 100}] * 10, max_bytes=350)) == [
        [{"content": "x" * 100}] * 3
    ] * 3 + [[{"content": "x" * 100}]]
    assert idempotency_key(result[0]) == idempotency_key(list(result[0]))
    assert idempotency_key(result[0]) != idempotency_key(result[1])


@pytest.fixture
async def api_client(settings: Settings, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    app = build_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://searchhub.test", headers=tenant.auth
        ) as c:
            yield c


async def test_an_import_indexes_everything_and_a_rerun_does_not_duplicate(
    tmp_path: Path, api_client: httpx.AsyncClient, tenant: Tenant, worker: None, pool: asyncpg.Pool
) -> None:
    for i in range(12):
        write(tmp_path / "corpus" / f"doc{i:02}.txt", f"document {i}")
    ndjson = write(
        tmp_path / "extra.jsonl", "\n".join(json.dumps({"content": f"line {i}"}) for i in range(5))
    )
    console = Console(file=io.StringIO(), width=120)

    first = await run_import([str(tmp_path / "corpus"), str(ndjson)], api_client, console, max_documents=5)

    assert (first.read, first.accepted, first.rejected, first.indexed, first.failed) == (17, 17, 0, 17, 0)
    assert first.batches_total == 4
    count = "SELECT count(*), max(version) FROM documents WHERE tenant_id = $1"
    assert tuple(await pool.fetchrow(count, tenant.id)) == (17, 1)

    again = await run_import([str(tmp_path / "corpus"), str(ndjson)], api_client, console, max_documents=5)

    assert (again.accepted, again.indexed) == (17, 17)
    assert tuple(await pool.fetchrow(count, tenant.id)) == (17, 1)  # replayed: no new rows, no new versions
    importer.print_summary(console, again)
    assert "indexed" in console.file.getvalue()  # type: ignore[attr-defined]


async def test_a_rejected_batch_is_reported_and_the_rest_goes_on(
    tmp_path: Path, api_client: httpx.AsyncClient, tenant: Tenant, pool: asyncpg.Pool
) -> None:
    path = write(
        tmp_path / "mixed.ndjson",
        "\n".join(
            json.dumps(d) for d in [{"content": "ok"}, {"content": "bad", "content_type": "image/png"}]
        ),
    )
    console = Console(file=io.StringIO())

    summary = await run_import([str(path), str(path)], api_client, console, wait=False, max_documents=1)

    assert (summary.accepted, summary.rejected) == (2, 2)
    assert any("content_type" in p.message for p in summary.problems)
    assert importer.exit_code(summary) == 1
    assert await pool.fetchval("SELECT count(*) FROM documents WHERE tenant_id = $1", tenant.id) == 1
