"""The work of one job, as steps: extract → index → upsert.

``extract`` and ``index`` are pure (no I/O): they turn the document's version into what the search
index stores. The statement that marks the job indexed writes it (``complete_jobs``, called by
``transitions.complete_many``), so the index and the job's status never disagree.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from worker import extraction

#: Content larger than this is extracted in a thread, so that the event loop keeps renewing leases
#: and serving other jobs while a big document is parsed.
THREAD_ABOVE_CHARS = 256 * 1024


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
    passages: list[str]
    #: The text-search configuration (regconfig) the tsvectors are built with.
    config: str


def extract(source: Source) -> Extracted:
    """The document's plain text, by content type; the client's title, else one found in the
    content (an HTML <title>)."""
    try:
        found_title, text = extraction.extract(source.content_type, source.content)
    except extraction.NotText as exc:
        raise PermanentError(str(exc)) from None
    title = source.title if source.title and source.title.strip() else found_title
    if not text.strip() and not title:
        raise PermanentError(f"no searchable text: the {source.content_type} content has no visible text")
    return Extracted(title=title, text=text)


def index(source: Source, extracted: Extracted, config: str) -> IndexEntry:
    return IndexEntry(
        document_id=source.document_id,
        version=source.version,
        title=extracted.title,
        passages=extraction.passages(extracted.text),
        config=config,
    )


def passage_arrays(
    entries: Sequence[IndexEntry],
) -> tuple[list[uuid.UUID], list[int], list[int], list[str | None], list[str]]:
    """The entries' passages as the parallel arrays the statements take: document ids, versions,
    passage numbers, titles, bodies."""
    return (
        [e.document_id for e in entries for _ in e.passages],
        [e.version for e in entries for _ in e.passages],
        [n for e in entries for n in range(len(e.passages))],
        [e.title for e in entries for _ in e.passages],
        [p for e in entries for p in e.passages],
    )


def run(source: Source, config: str) -> IndexEntry:
    return index(source, extract(source), config)


async def prepare(source: Source, config: str) -> IndexEntry:
    """``run``, in a thread for big content."""
    if len(source.content) > THREAD_ABOVE_CHARS:
        return await asyncio.to_thread(run, source, config)
    return run(source, config)
