"""What a job needs from its process, created once per worker process."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from shared.settings import Settings


@dataclass(frozen=True)
class WorkerContext:
    settings: Settings
    pool: asyncpg.Pool


#: Key of the WorkerContext in arq's ``ctx`` dict.
CTX_KEY = "searchhub"
