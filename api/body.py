"""Reading and validating request bodies: size-checked while streaming, decoded by msgspec, and on
failure every bad field named by its path (``metadata``, ``documents[3].content``)."""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

import msgspec
from starlette.requests import Request

from api.errors import InvalidJson, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from shared.schemas import ErrorDetail

T = TypeVar("T")

_JSON_MEDIA = re.compile(r"^application/([\w.+-]+\+)?json\s*(;.*)?$", re.IGNORECASE)
_MSGSPEC_PATH = re.compile(r"^(?P<text>.*) - at `\$(?P<path>.*)`$")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` bytes (never buffered whole first)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def require_json(request: Request) -> None:
    media = request.headers.get("content-type")
    if media is None or not _JSON_MEDIA.match(media):
        raise UnsupportedMediaType(f"expected Content-Type: application/json, got {media or 'none'}")


def join(prefix: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{prefix}[{name}]"
    return f"{prefix}.{name}" if prefix else name


def _from_msgspec(exc: msgspec.ValidationError, prefix: str) -> ErrorDetail:
    match = _MSGSPEC_PATH.match(str(exc))
    if match is None:
        return ErrorDetail(path=prefix or "$", message=str(exc))
    path = match["path"]
    if path.startswith("."):
        path = path[1:]
    full = f"{prefix}.{path}" if prefix and path and not path.startswith("[") else prefix + path
    return ErrorDetail(path=full or "$", message=match["text"])


def field_errors(raw: Any, struct: type, prefix: str = "") -> list[ErrorDetail]:
    """Every problem of ``raw`` against ``struct``, field by field (msgspec stops at the first)."""
    if not isinstance(raw, dict):
        return [ErrorDetail(path=prefix or "$", message="expected a JSON object")]
    fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
    errors = [
        ErrorDetail(path=join(prefix, key), message="unknown field") for key in raw if key not in fields
    ]
    for name, info in fields.items():
        path = join(prefix, name)
        if name not in raw:
            if info.required:
                errors.append(ErrorDetail(path=path, message="required field is missing"))
            continue
        try:
            msgspec.convert(raw[name], info.type)
        except msgspec.ValidationError as exc:
            errors.append(_from_msgspec(exc, path))
    return errors


def surrogate_paths(value: Any, prefix: str = "") -> list[str]:
    """Paths of strings holding lone surrogates, which UTF-8 (and PostgreSQL) cannot store."""
    found: list[str] = []
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                found.append(prefix or "$")
    elif isinstance(value, dict):
        for key, item in value.items():
            if surrogate_paths(key):
                found.append(join(prefix, "<key>"))
            found.extend(surrogate_paths(item, join(prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(surrogate_paths(item, join(prefix, index)))
    return found


def decode_json(body: bytes) -> Any:
    """Any JSON value; 400 for what is not JSON, 422 for JSON that holds lone surrogates."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        pass
    # msgspec refuses lone surrogate escapes ("\ud800") as malformed; they are valid JSON syntax,
    # so tell a client which field holds one instead of calling the whole body broken.
    try:
        value = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise InvalidJson(f"the body is not valid JSON: {exc}") from None
    paths = surrogate_paths(value)
    if not paths:
        raise InvalidJson("the body is not valid JSON")
    message = "contains a lone surrogate escape, which is not valid Unicode text"
    raise ValidationFailed("invalid text", [ErrorDetail(path=p, message=message) for p in paths])


def decode_struct(body: bytes, decoder: msgspec.json.Decoder[T], struct: type[T]) -> T:
    """Fast path: msgspec decodes and validates in one pass. Slow path, only on bad input:
    name every bad field."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError:
        raw = decode_json(body)
        errors = field_errors(raw, struct) or [ErrorDetail(path="$", message="invalid body")]
        raise ValidationFailed("the body does not match the schema", errors) from None
    except msgspec.DecodeError:
        decode_json(body)  # raises the precise 400 or 422
        raise InvalidJson("the body is not valid JSON") from None
