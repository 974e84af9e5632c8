"""The delivery rail: arq on Redis. Payloads are msgpack (msgspec), never pickle."""

from __future__ import annotations

import asyncio

import msgspec
from arq.connections import ArqRedis
from redis.exceptions import RedisError

from shared.constants import INDEX_JOB_FUNCTION, QUEUE_NAME
from shared.schemas import IndexJobPayload
from shared.settings import Settings

#: Errors that mean Redis is unreachable or refusing, not that our request is wrong.
REDIS_UNAVAILABLE_ERRORS = (TimeoutError, OSError, RedisError)

serialize = msgspec.msgpack.Encoder().encode
deserialize = msgspec.msgpack.Decoder().decode


def create_redis(settings: Settings, *, timeout_s: float | None = None) -> ArqRedis:
    """A client whose connections open lazily and reopen after Redis comes back; every command is
    bounded by ``timeout_s`` so a Redis outage costs a caller that long at most, never a hang."""
    timeout = timeout_s if timeout_s is not None else max(settings.enqueue_timeout_s, 1.0)
    redis = ArqRedis.from_url(
        settings.require("redis_url"),
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        health_check_interval=30,
    )
    redis.job_serializer = serialize
    redis.job_deserializer = deserialize
    redis.default_queue_name = QUEUE_NAME
    return redis


async def enqueue_index_job(
    redis: ArqRedis, payload: IndexJobPayload, *, defer_s: float | None = None
) -> bool:
    """Hands a job to arq under its own id, so enqueuing it twice is a no-op.

    Returns False when arq already holds a job of that id (queued, deferred or running): the work is
    already on its way, and nothing needs doing.
    """
    job = await redis.enqueue_job(
        INDEX_JOB_FUNCTION,
        msgspec.to_builtins(payload),
        _job_id=str(payload.job_id),
        _defer_by=defer_s,
    )
    return job is not None


async def enqueue_bounded(redis: ArqRedis, payload: IndexJobPayload, timeout_s: float) -> bool | None:
    """Enqueue within ``timeout_s``; None when Redis did not answer in time or refused.

    The durable row is already committed, so a lost enqueue is the reconciler's to re-drive."""
    try:
        return await asyncio.wait_for(enqueue_index_job(redis, payload), timeout_s)
    except REDIS_UNAVAILABLE_ERRORS:
        return None
