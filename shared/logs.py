"""One logger for every process: loguru, bound with ``service``, as text or JSON lines.

Events are short snake_case messages; their facts go in bound fields (``tenant_id``, ``job_id`` …),
never in the text, so that JSON logs can be queried. Never log keys or document contents.
"""

from __future__ import annotations

import logging
import sys
import traceback
from datetime import UTC
from typing import Any, TextIO

import msgspec
from loguru import logger

_json = msgspec.json.Encoder()


def _fields(record: Any) -> dict[str, Any]:
    return {k: v for k, v in record["extra"].items() if v is not None}


def _exception_text(record: Any) -> str | None:
    exc = record["exception"]
    if exc is None or exc.type is None:
        return None
    return "".join(traceback.format_exception(exc.type, exc.value, exc.traceback)).rstrip()


class _Sink:
    def __init__(self, stream: TextIO, as_json: bool) -> None:
        self.stream = stream
        self.as_json = as_json

    def __call__(self, message: Any) -> None:
        record = message.record
        when = record["time"].astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        fields = _fields(record)
        trace = _exception_text(record)
        if self.as_json:
            line: dict[str, Any] = {"ts": when, "level": record["level"].name, "event": record["message"]}
            line.update(fields)
            if trace:
                line["exception"] = trace
            out = _json.encode(line).decode() + "\n"
        else:
            service = fields.pop("service", "-")
            pairs = " ".join(f"{k}={v}" for k, v in fields.items())
            out = f"{when} {record['level'].name:<7} {service:<6} {record['message']}"
            out += f" {pairs}\n" if pairs else "\n"
            if trace:
                out += trace + "\n"
        self.stream.write(out)
        self.stream.flush()


class _InterceptHandler(logging.Handler):
    """Routes the stdlib loggers of our libraries (arq, uvicorn, asyncpg) into loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(exception=record.exc_info).bind(logger=record.name).log(level, record.getMessage())


def configure_logging(service: str, *, level: str = "INFO", as_json: bool = False) -> None:
    logger.remove()
    logger.configure(extra={"service": service})
    logger.add(_Sink(sys.stderr, as_json), level=level.upper(), backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[_InterceptHandler()], level=logging.INFO, force=True)
    # arq writes an INFO line per job start and end (~15 % of worker CPU); ours say what matters once.
    logging.getLogger("arq").setLevel(logging.WARNING)
    # Our own middleware counts requests; the access log would double every request's cost.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
