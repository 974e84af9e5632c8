"""What every request handler needs, created once per process by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from arq.connections import ArqRedis
from starlette.requests import Request

from api.backpressure import QueuedJobsGuard
from api.enqueuer import Enqueuer
from api.key_cache import KeyCache
from api.writer import IngestWriter
from shared.settings import Settings


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    pool: asyncpg.Pool
    redis: ArqRedis
    enqueuer: Enqueuer
    writer: IngestWriter
    queued_jobs: QueuedJobsGuard
    keys: KeyCache


def context(request: Request) -> AppContext:
    return request.app.state.ctx
