"""/v1/search: full-text search over the tenant's indexed documents.

Ranking and snippets are PostgreSQL's (sql/queries/search.sql). Snippets are HTML: the passage text
is escaped and only the query's hits are wrapped in <mark>.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api.auth import tenant_connection
from api.context import context
from api.errors import invalid
from api.params import int_param
from api.responses import JSON
from shared.queries import Q
from shared.schemas import SearchHit, SearchResults

DEFAULT_LIMIT, MAX_LIMIT = 10, 100
MAX_OFFSET = 10_000
#: How much wider the candidate set is when the first one held too few documents.
WIDEN = 8

# ts_headline marks hits with two private-use characters (extraction removes them from documents),
# which become <mark> tags only here: no text of a document can open or close a tag.
_START, _STOP = "\ue000", "\ue001"
HEADLINE_OPTIONS = (
    f"StartSel={_START}, StopSel={_STOP}, MaxWords=30, MinWords=12, ShortWord=2, MaxFragments=2, "
    'FragmentDelimiter=" … "'
)
_decode = msgspec.json.Decoder(dict[str, Any]).decode


def query_text(request: Request, max_chars: int) -> str:
    q = request.query_params.get("q")
    if q is None or not q.strip():
        raise invalid("q", "must not be empty")
    if len(q) > max_chars:
        raise invalid("q", f"is longer than {max_chars} characters")
    if "\x00" in q:
        raise invalid("q", "must not contain NUL characters")
    return q


def metadata_filter(request: Request, max_bytes: int) -> dict[str, Any] | None:
    raw = request.query_params.get("filter")
    if raw is None or not raw.strip():
        return None
    if len(raw) > max_bytes:
        raise invalid("filter", f"is larger than {max_bytes} bytes")
    try:
        value = _decode(raw)
    except msgspec.ValidationError:
        raise invalid("filter", 'must be a JSON object, e.g. {"lang": "en"}') from None
    except msgspec.DecodeError:
        raise invalid("filter", 'is not valid JSON; expected an object, e.g. {"lang": "en"}') from None
    if b"\\u0000" in msgspec.json.encode(value):
        raise invalid("filter", "must not contain NUL characters")
    return value


def snippet(marked: str) -> str:
    """The headline, already HTML-escaped in SQL, on one line with its hits in <mark>."""
    return " ".join(marked.split()).replace(_START, "<mark>").replace(_STOP, "</mark>")


async def search(request: Request) -> Response:
    settings = context(request).settings
    async with tenant_connection(request) as (conn, tenant_id), conn.transaction(readonly=True):
        q = query_text(request, settings.search_max_query_chars)
        limit = int_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = int_param(request, "offset", 0, 0, MAX_OFFSET)
        wanted = metadata_filter(request, settings.max_metadata_bytes)
        cap = max(settings.search_candidates, offset + limit)
        if '"' in q:
            await conn.execute(Q.search_plan_by_index)
        args = (tenant_id, settings.search_config, q, wanted, limit, offset, HEADLINE_OPTIONS)
        rows = await conn.fetch(Q.search, *args, cap)
        # Too few hits although the candidate limit was reached (an empty page past offset 0 may
        # be such a case too): the newest candidates were passages of only a few long documents.
        if len(rows) < limit and (rows[0]["candidates"] >= cap if rows else offset > 0):
            rows = await conn.fetch(Q.search, *args, cap * WIDEN)
    hits = [
        SearchHit(
            document_id=r["document_id"],
            external_id=r["external_id"],
            title=r["title"],
            snippet=snippet(r["snippet"]),
            score=round(r["score"], 6),
            metadata=r["metadata"],
        )
        for r in rows
    ]
    return JSON(SearchResults(query=q, hits=hits))
