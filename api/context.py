"""What every request handler needs, created once per process by the app's lifespan."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import asyncpg
from arq.connections import ArqRedis
from starlette.requests import Request

from api.enqueuer import Enqueuer
from api.writer import IngestWriter
from shared.settings import Settings


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    pool: asyncpg.Pool
    redis: ArqRedis
    enqueuer: Enqueuer
    writer: IngestWriter
    #: key hash → (tenant id, monotonic time it was read); see api.auth.
    auth_cache: dict[bytes, tuple[uuid.UUID, float]] = field(default_factory=dict)


def context(request: Request) -> AppContext:
    return request.app.state.ctx
