"""The delivery rail: arq on Redis. Payloads are msgpack (msgspec), never pickle."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import msgspec
from arq.connections import ArqRedis
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms
from redis.exceptions import RedisError

from shared.constants import INDEX_JOB_FUNCTION, QUEUE_NAME
from shared.schemas import IndexJobPayload
from shared.settings import Settings

#: Errors that mean Redis is unreachable or refusing, not that our request is wrong.
REDIS_UNAVAILABLE_ERRORS = (TimeoutError, OSError, RedisError)

serialize = msgspec.msgpack.Encoder().encode
deserialize = msgspec.msgpack.Decoder().decode


def wire_payload(payload: IndexJobPayload) -> dict[str, object]:
    """The payload as it travels, checked against its schema on the way out: a malformed payload is
    refused here, where it was made, not later by a worker (which checks it again on receipt)."""
    wire = msgspec.to_builtins(payload)
    msgspec.convert(wire, IndexJobPayload)
    return wire


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
        wire_payload(payload),
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


# What arq's enqueue_job does for one job (WATCH the job key; skip the id if its job or result key
# exists; PSETEX the job; ZADD it to the queue), done here for many jobs in one script call: one
# round trip instead of three per job, and atomic per job as arq's MULTI is.
# KEYS: the queue, then n job keys, then n result keys. ARGV: score, expiry ms, n ids, n jobs.
_ENQUEUE_MANY_LUA = """
local n = (#KEYS - 1) / 2
local score, px = ARGV[1], ARGV[2]
local added = {}
for i = 1, n do
    if redis.call('EXISTS', KEYS[1 + i], KEYS[1 + n + i]) == 0 then
        redis.call('PSETEX', KEYS[1 + i], px, ARGV[2 + n + i])
        redis.call('ZADD', KEYS[1], score, ARGV[2 + i])
        added[i] = 1
    else
        added[i] = 0
    end
end
return added
"""


async def enqueue_index_jobs(redis: ArqRedis, payloads: Sequence[IndexJobPayload]) -> list[bool]:
    """Enqueues many jobs in one round trip, writing exactly what ``enqueue_index_job`` (arq's
    ``enqueue_job``) writes: the same keys, serializer, score and expiry, so arq's workers read them
    as their own. Returns, per payload, False where arq already held a job of that id."""
    if not payloads:
        return []
    script = getattr(redis, "_searchhub_enqueue_many", None)
    if script is None:
        script = redis.register_script(_ENQUEUE_MANY_LUA)
        redis._searchhub_enqueue_many = script  # type: ignore[attr-defined]
    now_ms = timestamp_ms()
    ids = [str(p.job_id) for p in payloads]
    jobs = [
        serialize_job(
            INDEX_JOB_FUNCTION, (wire_payload(p),), {}, None, now_ms, serializer=redis.job_serializer
        )
        for p in payloads
    ]
    keys = [QUEUE_NAME, *(job_key_prefix + i for i in ids), *(result_key_prefix + i for i in ids)]
    added = await script(keys=keys, args=[now_ms, redis.expires_extra_ms, *ids, *jobs])
    return [bool(flag) for flag in added]


async def enqueue_many_bounded(
    redis: ArqRedis, payloads: Sequence[IndexJobPayload], timeout_s: float
) -> list[bool] | None:
    """``enqueue_index_jobs`` within ``timeout_s``; None when Redis did not answer in time or refused
    (the rows are committed: the reconciler re-drives them)."""
    try:
        return await asyncio.wait_for(enqueue_index_jobs(redis, payloads), timeout_s)
    except REDIS_UNAVAILABLE_ERRORS:
        return None
