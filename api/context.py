"""What every request handler needs, created once per process by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from arq.connections import ArqRedis
from starlette.requests import Request

from api.backpressure import QueuedJobsGuard
from shared.settings import Settings


@dataclass(frozen=True)
class AppContext:
    settings: Settings
    pool: asyncpg.Pool
    redis: ArqRedis
    queued_jobs: QueuedJobsGuard


def context(request: Request) -> AppContext:
    return request.app.state.ctx
