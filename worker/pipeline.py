"""The work of one job, as steps: extract → index → upsert.

``extract`` and ``index`` are pure (no I/O): they turn the document's version into what the search
index stores. ``upsert`` writes it inside the transaction that marks the job indexed (see
``transitions.complete``), so the index and the job's status never disagree.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg


class PermanentError(Exception):
    """No retry can fix this (the input itself is unusable): the job fails at once."""


@dataclass(frozen=True, slots=True)
class Source:
    """The document version a job claimed."""

    document_id: uuid.UUID
    version: int
    title: str | None
    content: str
    content_type: str


@dataclass(frozen=True, slots=True)
class Extracted:
    title: str | None
    text: str


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """What the search index holds for one document version."""

    document_id: uuid.UUID
    version: int
    title: str | None
    text: str


def extract(source: Source) -> Extracted:
    """The document's plain text. Markdown and HTML are taken as they are until the search index
    lands (see the search issue); every content type ends as text here."""
    return Extracted(title=source.title, text=source.content)


def index(source: Source, extracted: Extracted) -> IndexEntry:
    return IndexEntry(
        document_id=source.document_id, version=source.version, title=extracted.title, text=extracted.text
    )


async def upsert(conn: asyncpg.Connection, entry: IndexEntry) -> None:
    """Writes the entry into the search index, inside the completing transaction. The version that
    was indexed is recorded by ``complete_job`` itself (documents.indexed_version), which never moves
    backwards; the search index arrives with GET /v1/search."""
    del conn, entry


def run(source: Source) -> IndexEntry:
    return index(source, extract(source))
