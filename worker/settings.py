"""The whole configuration of an arq worker, in one place."""

from __future__ import annotations

from typing import Any

from arq import func
from arq.connections import ArqRedis

from shared.constants import INDEX_JOB_FUNCTION, QUEUE_NAME
from shared.queue import deserialize, serialize
from shared.settings import Settings
from worker.arq_worker import GroupStartWorker
from worker.context import CTX_KEY, WorkerContext
from worker.jobs import index_document

#: arq gives up on a job after this many starts *without running our code*, which would strand its
#: row; our own attempt count (index_jobs.attempts) ends jobs long before, so keep arq's far above.
ARQ_TRIES_HEADROOM = 20


def arq_timeout_s(settings: Settings) -> float:
    """arq's own job timeout: our timeout (jobs.py) fires first and is handled; this is the backstop."""
    return settings.job_timeout_s + 30


def in_progress_timeout_s(settings: Settings) -> float:
    """How long arq's in-progress marker of a started delivery lives (arq adds 10 s to the timeout):
    until then no other worker starts that job, even if the worker that started it died."""
    return arq_timeout_s(settings) + 10


def worker_options(settings: Settings) -> dict[str, Any]:
    return {
        "functions": [
            func(
                index_document,
                name=INDEX_JOB_FUNCTION,
                max_tries=settings.job_max_attempts + ARQ_TRIES_HEADROOM,
                timeout=arq_timeout_s(settings),
            )
        ],
        "queue_name": QUEUE_NAME,
        "max_jobs": settings.worker_concurrency,
        "poll_delay": settings.worker_poll_delay_s,
        "keep_result": 0,  # results live in PostgreSQL; kept results would also block re-enqueues
        "job_serializer": serialize,
        "job_deserializer": deserialize,
        "handle_signals": False,  # worker.main owns signals: it outlives arq's loop across outages
        "health_check_interval": 30,
    }


def build_worker(settings: Settings, app: WorkerContext, redis: ArqRedis) -> GroupStartWorker:
    return GroupStartWorker(redis_pool=redis, ctx={CTX_KEY: app}, **worker_options(settings))
