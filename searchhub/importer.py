"""``searchhub import PATH…``: bulk-loads files, folders and NDJSON through the batch endpoint.

Re-running the same input does not duplicate: every document carries an external_id (an NDJSON
line's own field; else the file's path; else, for an NDJSON line without one, a hash of its
content), and every batch an Idempotency-Key derived from its content, so a batch sent before is
answered from the first time instead of making new versions.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

NDJSON_SUFFIXES = {".ndjson", ".jsonl"}
CONTENT_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
}
DOCUMENT_FIELDS = {"content", "title", "external_id", "content_type", "metadata"}
BATCH_MAX_DOCUMENTS = 500
BATCH_MAX_BYTES = 8 * 1024 * 1024  # under the API's default 10 MiB body limit
FINISHED = ("indexed", "failed")

_encode = msgspec.json.Encoder().encode


class ImportFailed(Exception):
    """A problem that stops the import (bad key, unreachable API); the message says which."""


@dataclass
class Problem:
    where: str
    message: str


@dataclass
class Summary:
    read: int = 0
    accepted: int = 0
    rejected: int = 0
    skipped: int = 0
    indexed: int = 0
    failed: int = 0
    batches_sent: int = 0
    batches_total: int = 0
    problems: list[Problem] = field(default_factory=list)
    job_errors: list[Problem] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False


# Reading ------------------------------------------------------------------------------------------


def _file_external_id(path: Path) -> str:
    """The file's path as given (relative to the current folder when under it), with / separators."""
    try:
        shown = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        shown = path.resolve()
    return shown.as_posix()


def _ndjson_document(raw: Any, where: str) -> dict[str, Any] | Problem:
    if not isinstance(raw, dict):
        return Problem(where, "expected a JSON object on each line")
    doc = {k: v for k, v in raw.items() if k in DOCUMENT_FIELDS}
    if doc.get("external_id") is None:
        # Stable across re-runs whatever the line's position: the same content is the same document.
        digest = hashlib.sha256(_encode(doc.get("content"))).hexdigest()[:32]
        doc["external_id"] = f"sha256:{digest}"
    return doc


def read_ndjson(stream: BinaryIO, name: str) -> Iterator[dict[str, Any] | Problem]:
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            raw = json.loads(line)
        except ValueError as exc:
            yield Problem(where, f"not JSON: {exc}")
            continue
        yield _ndjson_document(raw, where)


def read_file(path: Path) -> Iterator[dict[str, Any] | Problem]:
    if path.suffix.lower() in NDJSON_SUFFIXES:
        with path.open("rb") as stream:
            yield from read_ndjson(stream, str(path))
        return
    data = path.read_bytes()
    if b"\x00" in data:
        yield Problem(str(path), "skipped: binary file")
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        yield Problem(str(path), "skipped: not UTF-8 text")
        return
    if not text.strip():
        yield Problem(str(path), "skipped: empty file")
        return
    yield {
        "content": text,
        "title": path.stem,
        "external_id": _file_external_id(path),
        "content_type": CONTENT_TYPES.get(path.suffix.lower(), "text/plain"),
        "metadata": {"source_path": _file_external_id(path)},
    }


def read_inputs(paths: Sequence[str], stdin: BinaryIO | None = None) -> Iterator[dict[str, Any] | Problem]:
    """Documents (or problems) from every PATH in order: ``-`` is NDJSON on stdin, a folder is
    walked in name order (hidden entries skipped), a .ndjson/.jsonl file has one document a line."""
    for name in paths:
        if name == "-":
            yield from read_ndjson(stdin or sys.stdin.buffer, "stdin")
            continue
        path = Path(name)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for file in sorted(f for f in files if not f.startswith(".")):
                    yield from read_file(Path(root) / file)
        elif path.is_file():
            yield from read_file(path)
        else:
            yield Problem(name, "no such file or folder")


def batches(
    docs: Iterable[dict[str, Any]], max_documents: int = BATCH_MAX_DOCUMENTS, max_bytes: int = BATCH_MAX_BYTES
) -> Iterator[list[dict[str, Any]]]:
    """Batches the API accepts: bounded in count and bytes, and never holding one external_id
    twice (the later one starts the next batch, so it becomes the later version)."""
    batch: list[dict[str, Any]] = []
    size = 0
    ids: set[str] = set()
    for doc in docs:
        doc_size = len(_encode(doc)) + 1
        external_id = doc.get("external_id")
        if batch and (len(batch) >= max_documents or size + doc_size > max_bytes or external_id in ids):
            yield batch
            batch, size, ids = [], 0, set()
        batch.append(doc)
        size += doc_size
        if external_id is not None:
            ids.add(external_id)
    if batch:
        yield batch


def idempotency_key(batch: list[dict[str, Any]]) -> str:
    return "import-" + hashlib.sha256(_encode(batch)).hexdigest()[:48]


# Sending and following --------------------------------------------------------------------------


async def _request(client: httpx.AsyncClient, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request, retried while the API says to wait (429, 503) or cannot be reached."""
    delay = 0.5
    for attempt in range(8):
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.TransportError as exc:
            if attempt == 7:
                raise ImportFailed(f"cannot reach the API: {exc}") from None
        else:
            if response.status_code == 401:
                raise ImportFailed("the API refused the key (401): check SEARCHHUB_API_KEY")
            if response.status_code not in (429, 502, 503, 504):
                return response
            retry_after = response.headers.get("retry-after", "")
            if retry_after.isdigit():
                delay = max(delay, float(retry_after))
        await asyncio.sleep(delay)
        delay = min(delay * 2, 10)
    return response


def _first_error(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return f"HTTP {response.status_code}"
    details = "; ".join(f"{d['path']}: {d['message']}" for d in error.get("details", [])[:3])
    return f"{error.get('code')}: {details or error.get('message')}"


async def send_batches(
    client: httpx.AsyncClient,
    all_batches: list[list[dict[str, Any]]],
    summary: Summary,
    jobs: dict[str, str],
    progress: Progress,
    *,
    concurrency: int = 2,
) -> None:
    task = progress.add_task("sending", total=sum(len(b) for b in all_batches))
    pending = list(enumerate(all_batches))

    async def sender() -> None:
        while pending:
            index, batch = pending.pop(0)
            response = await _request(
                client,
                "POST",
                "/v1/documents/batch",
                content=_encode({"documents": batch}),
                headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key(batch)},
            )
            if response.status_code == 202:
                for doc, item in zip(batch, response.json()["items"], strict=True):
                    jobs[item["job_id"]] = doc.get("external_id") or item["document_id"]
                summary.accepted += len(batch)
            else:
                summary.rejected += len(batch)
                summary.problems.append(Problem(f"batch {index + 1}", _first_error(response)))
            summary.batches_sent += 1
            progress.advance(task, len(batch))

    await asyncio.gather(*(sender() for _ in range(concurrency)))


async def follow_jobs(
    client: httpx.AsyncClient, jobs: dict[str, str], summary: Summary, progress: Progress, poll_s: float = 0.5
) -> None:
    """Polls each job until it ends. Jobs run roughly in the order they were sent, so a round checks
    them in that order and stops after a chunk in which none had ended: a round costs about as many
    requests as jobs ended since the last one, not one per job still waiting."""
    task = progress.add_task("indexing", total=len(jobs))
    waiting = dict.fromkeys(jobs)  # insertion-ordered
    chunk = 64

    async def check(job_id: str) -> bool:
        response = await _request(client, "GET", f"/v1/index-jobs/{job_id}")
        if response.status_code != 200:
            return False
        job = response.json()
        if job["status"] not in FINISHED:
            return False
        waiting.pop(job_id, None)
        progress.advance(task)
        if job["status"] == "indexed":
            summary.indexed += 1
        else:
            summary.failed += 1
            summary.job_errors.append(Problem(jobs[job_id], job.get("error") or "failed"))
        return True

    while waiting:
        order = list(waiting)
        for start in range(0, len(order), chunk):
            ended = await asyncio.gather(*(check(j) for j in order[start : start + chunk]))
            if not any(ended):
                break
        if waiting:
            await asyncio.sleep(poll_s)


async def run_import(
    paths: Sequence[str],
    client: httpx.AsyncClient,
    console: Console,
    *,
    wait: bool = True,
    stdin: BinaryIO | None = None,
    max_documents: int = BATCH_MAX_DOCUMENTS,
) -> Summary:
    summary = Summary()
    started = time.monotonic()
    docs: list[dict[str, Any]] = []
    for entry in read_inputs(paths, stdin):
        if isinstance(entry, Problem):
            summary.skipped += 1
            summary.problems.append(entry)
        else:
            docs.append(entry)
    summary.read = len(docs)
    all_batches = list(batches(docs, max_documents))
    summary.batches_total = len(all_batches)
    jobs: dict[str, str] = {}
    columns = (TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            await send_batches(client, all_batches, summary, jobs, progress)
            if wait and jobs:
                await follow_jobs(client, jobs, summary, progress)
    except (KeyboardInterrupt, asyncio.CancelledError):
        summary.interrupted = True
    summary.seconds = time.monotonic() - started
    return summary


def print_summary(console: Console, summary: Summary) -> None:
    table = Table(title="import summary", show_header=False)
    rate = summary.accepted / summary.seconds if summary.seconds else 0.0
    for label, value in [
        ("documents read", summary.read),
        ("accepted", summary.accepted),
        ("rejected (422)", summary.rejected),
        ("skipped inputs", summary.skipped),
        ("indexed", summary.indexed),
        ("failed", summary.failed),
        ("time", f"{summary.seconds:.1f} s"),
        ("docs/s", f"{rate:,.0f}"),
    ]:
        table.add_row(label, str(value))
    console.print(table)
    for title, problems in (("problems", summary.problems), ("first job errors", summary.job_errors)):
        for problem in problems[:5]:
            console.print(f"[yellow]{title}:[/] {problem.where}: {problem.message}")
        if len(problems) > 5:
            console.print(f"… and {len(problems) - 5} more {title}")
    if summary.interrupted:
        console.print(
            f"[bold]interrupted[/]: sent {summary.batches_sent} of {summary.batches_total} batches "
            f"({summary.accepted} documents accepted, {summary.indexed} indexed so far). Run the same "
            "command again to go on: batches already sent are answered again, not duplicated."
        )


def exit_code(summary: Summary) -> int:
    if summary.interrupted:
        return 130
    return 1 if summary.rejected or summary.failed else 0


def main(paths: Sequence[str], api_url: str, api_key: str, *, wait: bool = True) -> int:
    console = Console(stderr=True)

    async def go() -> Summary:
        headers = {"Authorization": f"Bearer {api_key}"}
        async with httpx.AsyncClient(base_url=api_url, headers=headers, timeout=120) as client:
            return await run_import(paths, client, console, wait=wait)

    try:
        summary = asyncio.run(go())
    except ImportFailed as exc:
        console.print(f"searchhub import: {exc}")
        return 1
    except KeyboardInterrupt:
        # Ctrl-C while asyncio.run unwinds: the summary of what was done is lost with the loop.
        console.print("interrupted before anything could be summarised; re-running does not duplicate")
        return 130
    print_summary(console, summary)
    return exit_code(summary)
