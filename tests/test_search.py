"""GET /v1/search over documents indexed by a real worker into real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from api.app import build_app
from searchhub.tenants import create_tenant
from shared.settings import Settings, SettingsError, load_settings
from tests.conftest import Tenant
from tests.support import eventually
from worker import pipeline, transitions


async def index(tenant: Tenant, timeout_s: float = 20.0, **doc: Any) -> dict:
    """Posts a document and waits until its job has ended; returns the job."""
    response = await tenant.post("/v1/documents", doc)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    return await eventually(
        lambda: tenant.job(job_id),
        lambda j: j["status"] in ("indexed", "failed"),
        timeout_s=timeout_s,
        what="job finished",
    )


async def search(tenant: Tenant, q: str, **params: object) -> list[dict]:
    response = await tenant.get("/v1/search", q=q, **params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"] == q
    return body["hits"]


def ids(hits: list[dict]) -> list[str]:
    return [h["document_id"] for h in hits]


# --- extraction, per content type ---------------------------------------------------------------


async def test_plain_text_is_searchable_with_highlighted_snippet(tenant: Tenant, worker: None) -> None:
    job = await index(tenant, content="The quick brown fox jumps over the lazy dog.", external_id="fox")
    assert job["status"] == "indexed"

    hits = await search(tenant, "jumping foxes")

    assert ids(hits) == [job["document_id"]]
    hit = hits[0]
    assert hit["external_id"] == "fox"
    assert hit["title"] is None
    assert hit["metadata"] == {}
    assert hit["score"] > 0
    assert "<mark>fox</mark>" in hit["snippet"]
    assert "<mark>jumps</mark>" in hit["snippet"]
    assert "<mark>quick</mark>" not in hit["snippet"]


async def test_html_visible_text_only_entities_decoded_title_from_head(
    tenant: Tenant, worker: None, pool: asyncpg.Pool
) -> None:
    page = (
        "<!DOCTYPE html><html><head><title>Caf&eacute; Guide</title>"
        "<style>.hidden { stylesecret: 1 }</style><script>var scriptsecret = 1;</script></head>"
        "<body><h1>Espresso</h1><p>Tom &amp; Jerry drink <b>cappuc</b>cino &lt;daily&gt;.</p>"
        "<div class='spanclass'>Crema</div><script>alert('inlinescript')</script><!-- commentsecret -->"
        "</body></html>"
    )
    job = await index(tenant, content=page, content_type="text/html")
    assert job["status"] == "indexed"

    body = await pool.fetchval(
        "SELECT string_agg(body, ' ') FROM search_passage_texts WHERE document_id = $1",
        uuid.UUID(job["document_id"]),
    )
    assert "Tom & Jerry drink cappuccino <daily>." in body
    assert "<b>" not in body
    assert "Caf" not in body  # the title is indexed as title, not as body text
    for hidden in ("stylesecret", "scriptsecret", "inlinescript", "commentsecret", "spanclass", "div"):
        assert await search(tenant, hidden) == [], hidden
    hits = await search(tenant, "cappuccino")
    assert ids(hits) == [job["document_id"]]
    assert hits[0]["title"] == "Café Guide"
    # The snippet is HTML: the text is escaped, only the hit is marked up.
    assert "&lt;daily&gt;" in hits[0]["snippet"]
    assert "<mark>cappuccino</mark>" in hits[0]["snippet"]
    assert ids(await search(tenant, "café")) == [job["document_id"]]


async def test_html_client_title_wins_over_head_title(tenant: Tenant, worker: None) -> None:
    page = "<html><head><title>Head Title</title></head><body><p>Body words</p></body></html>"
    job = await index(tenant, content=page, content_type="text/html", title="Client Title")
    hits = await search(tenant, "body")
    assert ids(hits) == [job["document_id"]]
    assert hits[0]["title"] == "Client Title"


async def test_markdown_is_parsed_to_its_text(tenant: Tenant, worker: None, pool: asyncpg.Pool) -> None:
    md = (
        "# Gardening\n\nGrow **tomatoes** in _full_ sun; see [the guide](https://example.com/urlsecret).\n\n"
        "- water daily\n- prune weekly\n\n```\nharvest()\n```\n\n"
        "<span class='htmlsecret'>inline html</span>\n"
    )
    job = await index(tenant, content=md, content_type="text/markdown")
    assert job["status"] == "indexed"

    body = await pool.fetchval(
        "SELECT body FROM search_passage_texts WHERE document_id = $1", uuid.UUID(job["document_id"])
    )
    assert "Grow tomatoes in full sun; see the guide." in body
    assert "*" not in body
    assert "#" not in body
    assert "water daily" in body
    for hidden in ("urlsecret", "htmlsecret", "https"):
        assert await search(tenant, hidden) == [], hidden
    for visible in ("tomatoes", "prune", "harvest", "gardening"):
        assert ids(await search(tenant, visible)) == [job["document_id"]], visible


async def test_malformed_html_indexes_its_text(tenant: Tenant, worker: None) -> None:
    broken = "<p>unclosed <b>bold <i>italic <div></p></span>&amp stray &#xZZ; <<>> <table><td>cellword"
    job = await index(tenant, content=broken, content_type="text/html")
    assert job["status"] == "indexed", job
    assert ids(await search(tenant, "cellword")) == [job["document_id"]]
    assert ids(await search(tenant, "italic")) == [job["document_id"]]


async def test_binary_junk_fails_without_retry(tenant: Tenant, worker: None) -> None:
    junk = bytes(range(1, 256)).decode("latin-1") * 40  # what a client sends decoding a binary file
    job = await index(tenant, content=junk, content_type="text/plain")

    assert job["status"] == "failed"
    assert job["attempts"] == 1  # permanent: not retried
    assert "not text" in job["error"]


async def test_html_with_no_visible_text_fails_with_a_clear_error(tenant: Tenant, worker: None) -> None:
    job = await index(tenant, content="<script>only()</script><style>x{}</style>", content_type="text/html")
    assert job["status"] == "failed"
    assert job["attempts"] == 1
    assert "no searchable text" in job["error"]


async def test_invalid_utf8_bytes_are_refused_and_replacement_characters_index(
    tenant: Tenant, worker: None, pool: asyncpg.Pool
) -> None:
    raw = b'{"content": "caf\xc3 bad \xff\xfe bytes", "external_id": "bad-utf8"}'
    response = await tenant.client.post(
        "/v1/documents", content=raw, headers={**tenant.auth, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert await pool.fetchval("SELECT count(*) FROM documents WHERE tenant_id = $1", tenant.id) == 0

    # The same bytes decoded leniently by a client: text with U+FFFD in it, indexed.
    text = "A paragraph of ordinary words, with a few caf\xc3 bad \xff\xfe bytes in it: goodword."
    lenient = text.encode("latin-1").decode("utf-8", errors="replace")
    assert "\ufffd" in lenient
    job = await index(tenant, content=lenient)
    assert job["status"] == "indexed", job
    assert ids(await search(tenant, "goodword")) == [job["document_id"]]


# --- ranking and query syntax ---------------------------------------------------------------------


async def test_title_match_ranks_above_body_only_match(tenant: Tenant, worker: None) -> None:
    body_only = await index(
        tenant, title="Weekly notes", content="We talked about the volcano and then lunch."
    )
    in_title = await index(tenant, title="Volcano", content="We talked about the volcano and then lunch.")
    unrelated = await index(tenant, title="Other", content="Nothing to see here.")
    assert {body_only["status"], in_title["status"], unrelated["status"]} == {"indexed"}

    hits = await search(tenant, "volcano")

    assert ids(hits) == [in_title["document_id"], body_only["document_id"]]
    assert hits[0]["score"] > hits[1]["score"]


async def test_phrase_negation_and_or(tenant: Tenant, worker: None) -> None:
    a = await index(tenant, content="the quick brown fox")
    b = await index(tenant, content="the brown quick fox")
    c = await index(tenant, content="a slow red fox")

    assert ids(await search(tenant, '"quick brown"')) == [a["document_id"]]
    assert set(ids(await search(tenant, "quick brown"))) == {a["document_id"], b["document_id"]}
    assert set(ids(await search(tenant, "fox -brown"))) == {c["document_id"]}
    assert set(ids(await search(tenant, "fox -quick -slow"))) == set()
    assert set(ids(await search(tenant, "slow or quick"))) == {
        a["document_id"],
        b["document_id"],
        c["document_id"],
    }
    # Only stop words, or only punctuation: a valid query that matches nothing.
    assert await search(tenant, "the") == []
    assert await search(tenant, '"(' + "&|!:*") == []


async def test_metadata_filter_is_json_containment(tenant: Tenant, worker: None) -> None:
    en = await index(tenant, content="river bank", metadata={"lang": "en", "tags": ["geo", "water"]})
    de = await index(tenant, content="river ufer", metadata={"lang": "de"})

    assert set(ids(await search(tenant, "river"))) == {en["document_id"], de["document_id"]}
    assert ids(await search(tenant, "river", filter=json.dumps({"lang": "en"}))) == [en["document_id"]]
    assert ids(await search(tenant, "river", filter='{"tags": ["water"]}')) == [en["document_id"]]
    assert await search(tenant, "river", filter='{"lang": "fr"}') == []
    hits = await search(tenant, "river", filter='{"lang": "de"}')
    assert hits[0]["metadata"] == {"lang": "de"}


async def test_limit_and_offset_page_through_hits(tenant: Tenant, worker: None) -> None:
    for n in range(5):
        job = await index(tenant, content=f"pagination word number {n} " + "pagination " * n)
        assert job["status"] == "indexed"

    everything = await search(tenant, "pagination", limit=100)
    assert len(everything) == 5
    scores = [h["score"] for h in everything]
    assert scores == sorted(scores, reverse=True)
    assert await search(tenant, "pagination", limit=2) == everything[:2]
    assert await search(tenant, "pagination", limit=2, offset=2) == everything[2:4]
    assert await search(tenant, "pagination", limit=2, offset=4) == everything[4:]


async def test_results_are_tenant_scoped(tenant: Tenant, other_tenant: Tenant, worker: None) -> None:
    mine = await index(tenant, content="shared secret word platypus")
    theirs = await index(other_tenant, content="shared secret word platypus")

    assert ids(await search(tenant, "platypus")) == [mine["document_id"]]
    assert ids(await search(other_tenant, "platypus")) == [theirs["document_id"]]


@pytest.mark.parametrize(
    ("params", "path"),
    [
        ({}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({"q": "x" * 501}, "q"),
        ({"q": "ok", "limit": "0"}, "limit"),
        ({"q": "ok", "limit": "101"}, "limit"),
        ({"q": "ok", "limit": "ten"}, "limit"),
        ({"q": "ok", "offset": "-1"}, "offset"),
        ({"q": "ok", "filter": "{not json"}, "filter"),
        ({"q": "ok", "filter": '["a"]'}, "filter"),
        ({"q": "ok", "filter": '{"a": "\\u0000"}'}, "filter"),
    ],
)
async def test_bad_parameters_are_422_naming_the_parameter(
    tenant: Tenant, params: dict[str, str], path: str
) -> None:
    response = await tenant.client.get("/v1/search", headers=tenant.auth, params=params)

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [d["path"] for d in error["details"]] == [path]


async def test_search_needs_an_api_key(tenant: Tenant) -> None:
    response = await tenant.client.get("/v1/search", params={"q": "x"})
    assert response.status_code == 401


# --- size -----------------------------------------------------------------------------------------


async def test_five_megabyte_document_indexes_and_its_last_paragraph_is_found(
    tenant: Tenant, worker: None, pool: asyncpg.Pool
) -> None:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda", "sigma"]
    paragraphs = [" ".join(f"{words[(i + k) % 10]}{i % 997}" for k in range(60)) for i in range(10_000)]
    paragraphs.append("The very last paragraph mentions the quetzalcoatl exactly once.")
    content = "\n\n".join(paragraphs)
    assert len(content.encode()) > 5 * 1024 * 1024

    job = await index(tenant, timeout_s=90, content=content, title="Big one")

    assert job["status"] == "indexed", job
    hits = await search(tenant, "quetzalcoatl")
    assert ids(hits) == [job["document_id"]]
    assert "<mark>quetzalcoatl</mark>" in hits[0]["snippet"]
    stored = await pool.fetchrow(
        "SELECT count(*) AS passages, sum(length(body)) AS chars, max(length(body)) AS longest"
        " FROM search_passage_texts WHERE document_id = $1",
        uuid.UUID(job["document_id"]),
    )
    assert stored["passages"] > 1
    # Nothing cut off: every paragraph is in a passage (only the blank lines between them go).
    assert stored["chars"] >= len(content) - 2 * len(paragraphs)
    # A phrase deep in the document still matches: positions are kept per passage.
    assert ids(await search(tenant, '"mentions the quetzalcoatl"')) == [job["document_id"]]


# --- versions and deletes ------------------------------------------------------------------------


class Gate:
    """Holds the job whose content contains ``marker`` after its claim, before its work (and so
    before it completes), until released, so a test can order a job's end against other events;
    records what the job's completing statement answered."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, marker: str) -> None:
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        self.result: bool | None = None
        prepare, complete_many = pipeline.prepare, transitions.complete_many

        async def held(source: pipeline.Source, config: str) -> pipeline.IndexEntry:
            if marker in source.content:
                self.reached.set()
                await self.release.wait()
            return await prepare(source, config)

        async def recorded(conn: asyncpg.Connection, done: list[Any]) -> list[bool | None]:
            results = await complete_many(conn, done)
            for (_, _, entry), result in zip(done, results, strict=True):
                if any(marker in p for p in entry.passages):
                    self.result = result
            return results

        monkeypatch.setattr(pipeline, "prepare", held)
        monkeypatch.setattr(transitions, "complete_many", recorded)


async def test_version_race_older_job_finishing_last_loses(
    tenant: Tenant, worker: None, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = Gate(monkeypatch, "aardvark")
    first = (await tenant.post("/v1/documents", {"content": "old aardvark", "external_id": "race"})).json()
    await asyncio.wait_for(gate.reached.wait(), 20)  # v1 claimed, held before its work
    document_id = uuid.UUID(first["document_id"])

    second = (await tenant.post("/v1/documents", {"content": "new bison", "external_id": "race"})).json()
    assert second["job_id"] != first["job_id"]  # v1's job is processing, so v2 gets its own
    v2 = await eventually(
        lambda: tenant.job(second["job_id"]), lambda j: j["status"] == "indexed", what="v2 indexed"
    )
    assert v2["document_version"] == 2
    assert len(await search(tenant, "bison")) == 1

    gate.release.set()  # the older job finishes last
    v1 = await eventually(
        lambda: tenant.job(first["job_id"]), lambda j: j["status"] == "indexed", what="v1 ended"
    )

    assert v1["document_version"] == 1
    assert gate.result is True  # the job itself ends indexed: its work is superseded, not failed
    assert await search(tenant, "aardvark") == []
    assert len(await search(tenant, "bison")) == 1
    rows = await pool.fetch("SELECT version FROM search_passages WHERE document_id = $1", document_id)
    assert [r["version"] for r in rows] == [2]
    indexed = await pool.fetchval("SELECT indexed_version FROM documents WHERE id = $1", document_id)
    assert indexed == 2


async def test_a_shorter_new_version_replaces_every_passage_of_the_old_one(
    tenant: Tenant, worker: None, pool: asyncpg.Pool
) -> None:
    paragraphs = [f"paragraph {i} about the {'pangolin' if i == 30 else 'weather'} " * 40 for i in range(40)]
    old = await index(tenant, content="\n\n".join(paragraphs), external_id="shrinks")
    document_id = uuid.UUID(old["document_id"])
    before = await pool.fetchval("SELECT count(*) FROM search_passages WHERE document_id = $1", document_id)
    assert before > 2  # long enough to be cut into several passages
    assert ids(await search(tenant, "pangolin")) == [old["document_id"]]

    new = await index(tenant, content="now only about the okapi", external_id="shrinks")

    assert new["status"] == "indexed"
    assert new["document_version"] == 2
    assert await search(tenant, "pangolin") == []
    assert ids(await search(tenant, "okapi")) == [old["document_id"]]
    for table in ("search_passages", "search_passage_texts"):
        rows = await pool.fetch(f"SELECT passage_no FROM {table} WHERE document_id = $1", document_id)
        assert [r["passage_no"] for r in rows] == [0], table


async def test_delete_removes_from_search_at_once(tenant: Tenant, worker: None, pool: asyncpg.Pool) -> None:
    job = await index(tenant, content="ephemeral wombat")
    assert len(await search(tenant, "wombat")) == 1

    response = await tenant.delete(f"/v1/documents/{job['document_id']}")

    assert response.status_code == 204
    assert await search(tenant, "wombat") == []
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM search_passages WHERE document_id = $1", uuid.UUID(job["document_id"])
        )
        == 0
    )


async def test_delete_during_indexing_is_not_undone_by_the_running_job(
    tenant: Tenant, worker: None, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = await index(tenant, content="version one narwhal", external_id="doomed")
    document_id = uuid.UUID(old["document_id"])
    gate = Gate(monkeypatch, "version two")
    answer = await tenant.post("/v1/documents", {"content": "version two narwhal", "external_id": "doomed"})
    await asyncio.wait_for(gate.reached.wait(), 20)  # v2 is processing, held before it completes

    assert (await tenant.delete(f"/v1/documents/{document_id}")).status_code == 204
    assert await search(tenant, "narwhal") == []
    gate.release.set()
    await eventually(lambda: asyncio.sleep(0, gate.result), lambda r: r is not None, what="job ended")

    assert gate.result is False  # the job went with its document; nothing was written
    assert await search(tenant, "narwhal") == []
    for table in ("search_passages", "search_passage_texts"):
        count = await pool.fetchval(f"SELECT count(*) FROM {table} WHERE document_id = $1", document_id)
        assert count == 0, table
    assert (await tenant.get(f"/v1/index-jobs/{answer.json()['job_id']}")).status_code == 404


# --- for DBAs and clients -------------------------------------------------------------------------


async def test_a_dba_can_search_with_plain_sql(tenant: Tenant, worker: None, pool: asyncpg.Pool) -> None:
    job = await index(tenant, content="The connection pool is shared.", external_id="pool-doc")
    await index(tenant, content="The connection pool talks to redis.")

    # The statement of README.md, "Plain SQL", with the tenant as a parameter.
    rows = await pool.fetch(
        """
        SELECT p.document_id, d.external_id, t.title, max(ts_rank_cd('{0.1,0.2,0.4,1.0}', p.tsv, q)) AS score
        FROM search_passages p
        JOIN search_passage_texts t USING (document_id, passage_no)
        JOIN documents d ON d.id = p.document_id,
             websearch_to_tsquery('english', '"connection pool" -redis') AS q
        WHERE p.tenant_id = $1 AND p.tsv @@ q
        GROUP BY p.document_id, d.external_id, t.title
        ORDER BY score DESC
        LIMIT 10
        """,
        tenant.id,
    )

    assert [(str(r["document_id"]), r["external_id"]) for r in rows] == [(job["document_id"], "pool-doc")]


async def test_search_tables_and_columns_are_commented(pool: asyncpg.Pool) -> None:
    missing = await pool.fetch(
        """
        SELECT c.relname, a.attname
        FROM pg_class c
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE c.relname IN ('search_passages', 'search_passage_texts')
          AND col_description(c.oid, a.attnum) IS NULL
        """
    )
    assert missing == []
    for table in ("search_passages", "search_passage_texts"):
        assert await pool.fetchval("SELECT obj_description($1::regclass, 'pg_class')", table)


async def test_openapi_documents_search(tenant: Tenant) -> None:
    spec = (await tenant.client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/search"]["get"]
    assert {p["name"] for p in operation["parameters"]} == {"q", "limit", "offset", "filter"}
    hit = spec["components"]["schemas"]["SearchHit"]
    assert set(hit["required"]) == {"document_id", "external_id", "title", "snippet", "score", "metadata"}


@pytest.mark.parametrize("value", ["english; DROP TABLE documents", "two words", "", "Ünglish"])
def test_search_config_setting_must_be_a_regconfig_name(value: str) -> None:
    if not value:
        assert load_settings({"SEARCHHUB_SEARCH_CONFIG": value}, env_file=None).search_config == "english"
        return
    with pytest.raises(SettingsError, match="SEARCHHUB_SEARCH_CONFIG"):
        load_settings({"SEARCHHUB_SEARCH_CONFIG": value}, env_file=None)


def test_search_config_setting_takes_schema_qualified_names() -> None:
    settings = load_settings({"SEARCHHUB_SEARCH_CONFIG": "pg_catalog.simple"}, env_file=None)
    assert settings.search_config == "pg_catalog.simple"


async def test_candidate_limit_widens_when_one_long_document_fills_it(
    settings: Settings, pool: asyncpg.Pool, worker: None, redis: object
) -> None:
    """With a limit of 3 candidates, the newest 3 matching passages all belong to one long
    document: the search looks wider once and still returns every matching document."""
    app = build_app(msgspec.structs.replace(settings, search_candidates=3))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://searchhub.test") as client:
            async with pool.acquire() as conn:
                tenant_id, key = await create_tenant(conn, f"tenant-{uuid.uuid4().hex[:12]}")
            tenant = Tenant(tenant_id, key, client)
            small = [await index(tenant, content=f"short note {n} about llamas") for n in range(3)]
            long_text = "\n\n".join(f"Paragraph {n} about llamas. " + "filler words " * 60 for n in range(40))
            big = await index(tenant, content=long_text)
            assert {j["status"] for j in [*small, big]} == {"indexed"}
            passages = await pool.fetchval(
                "SELECT count(*) FROM search_passages WHERE document_id = $1", uuid.UUID(big["document_id"])
            )
            assert passages > 3

            hits = await search(tenant, "llamas")

            assert set(ids(hits)) == {j["document_id"] for j in [*small, big]}
