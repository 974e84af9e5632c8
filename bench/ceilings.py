"""The in-run ceilings the figures are read against, each run as its own process.

A: a bare Starlette route on the same uvicorn settings that decodes the same body with msgspec and
   answers 202, touching neither PostgreSQL nor Redis: the HTTP stack's own limit.
B: the same two inserts (api.writer.write_one, the statement the API runs) plus one arq enqueue_job,
   by a bare script with no HTTP: the stores' limit for one document at a time.
C: a bare arq worker running no-op jobs on the same Redis with our worker options: arq's limit.

``python -m bench.ceilings a PORT`` | ``b DATABASE_URL REDIS_URL TENANT CONCURRENCY SECONDS`` |
``c REDIS_URL`` (prints JSON on its last line).
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from typing import Any

import msgspec

from shared.schemas import DocumentIn

NOOP_QUEUE = "searchhub:bench-noop"
NOOP_FUNCTION = "noop"


def ceiling_a(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    decoder = msgspec.json.Decoder(DocumentIn)
    encode = msgspec.json.Encoder().encode

    async def post(request: Request) -> Response:
        doc = decoder.decode(await request.body())
        job_id = uuid.uuid4()
        body = {"document_id": uuid.uuid4(), "job_id": job_id, "status": "queued", "status_url": f"/{job_id}"}
        del doc
        return Response(encode(body), status_code=202, media_type="application/json")

    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    app = Starlette(routes=[Route("/v1/documents", post, methods=["POST"]), Route("/healthz", health)])
    uvicorn.run(
        app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", log_config=None, access_log=False
    )


async def ceiling_b(database_url: str, redis_url: str, tenant: str, concurrency: int, seconds: float) -> None:
    from api.writer import write_one
    from shared.db import create_pool, tenant_connection
    from shared.queue import create_redis, enqueue_index_job
    from shared.settings import Settings

    settings = Settings(database_url=database_url, redis_url=redis_url)
    tenant_id = uuid.UUID(tenant)
    pool = await create_pool(settings, max_size=concurrency)
    redis = create_redis(settings)
    doc = msgspec.json.decode(sys.stdin.buffer.read(), type=DocumentIn)
    done = 0
    deadline = time.monotonic() + seconds

    async def loop() -> None:
        nonlocal done
        # One connection per task, bound to the tenant once, as row-level security requires.
        async with tenant_connection(pool, tenant_id) as conn:
            while time.monotonic() < deadline:
                written = await write_one(conn, tenant_id, doc)
                await enqueue_index_job(redis, written.payload())
                done += 1

    started = time.monotonic()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    await redis.aclose()
    await pool.close()
    print(msgspec.json.encode({"ops_per_s": done / elapsed, "ops": done}).decode())


async def ceiling_c(redis_url: str) -> None:
    """Runs the no-op queue empty (burst) and prints when its first job started and last ended."""
    from arq import func
    from arq.worker import Worker

    from shared.queue import create_redis
    from shared.settings import load_settings
    from worker.settings import worker_options

    first: list[float] = []
    last: list[float] = []
    count = 0

    async def noop(ctx: dict[str, Any], payload: Any) -> None:
        nonlocal count
        now = time.time()
        if not first:
            first.append(now)
        last[:] = [now]
        count += 1

    # The same worker settings as the real workers get (SEARCHHUB_WORKER_* from the environment).
    settings = msgspec.structs.replace(load_settings(env_file=None), redis_url=redis_url)
    options = worker_options(settings)
    options.update(functions=[func(noop, name=NOOP_FUNCTION)], queue_name=NOOP_QUEUE, burst=True)
    worker = Worker(redis_pool=create_redis(settings, timeout_s=5.0), **options)
    await worker.async_run()
    await worker.pool.aclose()
    print(msgspec.json.encode({"first": first[0] if first else None, "last": last[0] if last else None,
                               "jobs": count}).decode())  # fmt: skip


async def enqueue_noops(redis_url: str, n: int) -> None:
    """n no-op jobs on the no-op queue, written as our pipelined enqueue writes them."""
    from arq.constants import job_key_prefix
    from arq.jobs import serialize_job
    from arq.utils import timestamp_ms

    from shared.queue import create_redis, serialize
    from shared.settings import Settings

    redis = create_redis(Settings(redis_url=redis_url), timeout_s=30.0)
    now = timestamp_ms()
    for start in range(0, n, 5000):
        async with redis.pipeline(transaction=False) as pipe:
            for _ in range(start, min(n, start + 5000)):
                job_id = uuid.uuid4().hex
                job = serialize_job(NOOP_FUNCTION, ({"n": 1},), {}, None, now, serializer=serialize)
                pipe.psetex(job_key_prefix + job_id, 86_400_000, job)
                pipe.zadd(NOOP_QUEUE, {job_id: now})
            await pipe.execute()
    await redis.aclose()


def main(argv: list[str]) -> None:
    import uvloop

    kind, *args = argv
    if kind == "a":
        ceiling_a(int(args[0]))
    elif kind == "b":
        uvloop.run(ceiling_b(args[0], args[1], args[2], int(args[3]), float(args[4])))
    elif kind == "c":
        uvloop.run(ceiling_c(args[0]))
    else:
        raise SystemExit(f"unknown ceiling {kind!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
