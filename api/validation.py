"""Checks msgspec's types cannot express: limits from settings, and text PostgreSQL cannot store."""

from __future__ import annotations

from typing import Any

import msgspec

from api.body import join
from shared.schemas import DocumentIn, ErrorDetail
from shared.settings import Settings

_encode = msgspec.json.Encoder().encode


def _bad_text(value: str) -> str | None:
    # PostgreSQL text cannot hold NUL; UTF-8 cannot hold lone surrogates. Both would be a 500 later.
    if "\x00" in value:
        return "must not contain NUL characters (\\u0000)"
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "contains a lone surrogate, which is not valid Unicode text"
    return None


def _walk_metadata(value: Any, path: str, depth: int, limit: int, errors: list[ErrorDetail]) -> None:
    if isinstance(value, str):
        problem = _bad_text(value)
        if problem:
            errors.append(ErrorDetail(path=path, message=problem))
        return
    if isinstance(value, dict | list):
        if depth > limit:
            errors.append(ErrorDetail(path=path, message=f"nests deeper than {limit} levels"))
            return
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and (problem := _bad_text(key)):
                errors.append(ErrorDetail(path=path, message=f"a key {problem}"))
            _walk_metadata(item, join(path, key), depth + 1, limit, errors)


def document_errors(doc: DocumentIn, settings: Settings, prefix: str = "") -> list[ErrorDetail]:
    errors: list[ErrorDetail] = []

    def check_text(name: str, value: str | None, max_chars: int | None = None) -> None:
        if value is None:
            return
        path = join(prefix, name)
        if max_chars is not None and len(value) > max_chars:
            errors.append(ErrorDetail(path=path, message=f"is longer than {max_chars} characters"))
        elif problem := _bad_text(value):
            errors.append(ErrorDetail(path=path, message=problem))

    if not doc.content.strip():
        errors.append(ErrorDetail(path=join(prefix, "content"), message="must not be blank"))
    else:
        check_text("content", doc.content)
    check_text("title", doc.title, settings.max_title_chars)
    if doc.external_id is not None and not doc.external_id:
        errors.append(ErrorDetail(path=join(prefix, "external_id"), message="must not be empty"))
    check_text("external_id", doc.external_id, settings.max_external_id_chars)
    if doc.metadata:
        path = join(prefix, "metadata")
        if len(_encode(doc.metadata)) > settings.max_metadata_bytes:
            errors.append(
                ErrorDetail(path=path, message=f"is larger than {settings.max_metadata_bytes} bytes")
            )
        else:
            _walk_metadata(doc.metadata, path, 1, settings.max_metadata_depth, errors)
    return errors
