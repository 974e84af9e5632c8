"""The Starlette application: routes, middleware, error handlers and the lifespan that opens the
pools. ``create_app`` is the uvicorn factory."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import AsyncIterator

from loguru import logger
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.backpressure import QueuedJobsGuard
from api.context import AppContext
from api.direct_routes import SearchHubApp
from api.enqueuer import Enqueuer
from api.errors import ApiError, UnexpectedErrorMiddleware, api_error_handler, http_exception_handler
from api.key_cache import KeyCache, RevocationListener
from api.metrics import MetricsMiddleware
from api.openapi import spec
from api.responses import JSON
from api.routes import documents, health, index_jobs, search
from api.writer import IngestWriter
from shared.constants import SERVICE_API
from shared.db import create_pool
from shared.logs import configure_logging
from shared.queue import create_redis
from shared.settings import Settings, load_settings

#: How long a stopping API keeps sending buffered enqueues before leaving them to the reconciler.
SHUTDOWN_FLUSH_S = 5.0


async def openapi(request: Request) -> Response:
    return JSON(spec())


#: The routes that take the load, called directly (api/direct_routes.py).
INGEST_ROUTES = [
    Route("/v1/documents", documents.post_document, methods=["POST"]),
    Route("/v1/documents/batch", documents.post_batch, methods=["POST"]),
]

ROUTES = [
    *INGEST_ROUTES,
    Route("/v1/documents/{document_id}", documents.get_document, methods=["GET"]),
    Route("/v1/documents/{document_id}", documents.delete_document, methods=["DELETE"]),
    Route("/v1/index-jobs", index_jobs.list_jobs, methods=["GET"]),
    Route("/v1/index-jobs/{job_id}", index_jobs.get_job, methods=["GET"]),
    Route("/v1/index-jobs/{job_id}/retry", index_jobs.retry_job, methods=["POST"]),
    Route("/v1/search", search.search, methods=["GET"]),
    Route("/healthz", health.healthz, methods=["GET"]),
    Route("/readyz", health.readyz, methods=["GET"]),
    Route("/metrics", health.metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]


def build_app(settings: Settings) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        pool = await create_pool(settings)
        redis = create_redis(settings)
        enqueuer = Enqueuer(
            redis,
            max_pending=settings.enqueue_buffer_max,
            max_batch=settings.enqueue_batch_max,
            timeout_s=settings.enqueue_timeout_s,
        )
        enqueuer.start()
        writer = IngestWriter(
            pool,
            lambda written: enqueuer.submit(written.payload()),
            max_batch=settings.ingest_batch_max,
            max_in_flight=settings.ingest_statements_max,
        )
        keys = KeyCache(settings.auth_cache_s)
        revocations = RevocationListener(settings, keys)
        revocations.start()
        app.state.ctx = AppContext(
            settings=settings,
            pool=pool,
            redis=redis,
            enqueuer=enqueuer,
            writer=writer,
            queued_jobs=QueuedJobsGuard(settings),
            keys=keys,
        )
        # What start-up allocated (modules, pools, the app) lives as long as the process: keep it
        # out of the collector's generations, so full collections under load stay short.
        gc.collect()
        gc.freeze()
        logger.info("api_started", host=settings.host, port=settings.port)
        try:
            yield
        finally:
            await revocations.close()
            await writer.close()
            await enqueuer.close(SHUTDOWN_FLUSH_S)
            await redis.aclose()
            await pool.close()

    return SearchHubApp(
        direct=INGEST_ROUTES,
        routes=ROUTES,
        middleware=[Middleware(MetricsMiddleware), Middleware(UnexpectedErrorMiddleware)],
        exception_handlers={ApiError: api_error_handler, HTTPException: http_exception_handler},
        lifespan=lifespan,
    )


def create_app() -> Starlette:
    """uvicorn factory: settings from the environment. With SEARCHHUB_API_WORKERS > 1 each uvicorn
    worker process calls it, so it also sets up that process's logging."""
    settings = load_settings()
    configure_logging(SERVICE_API, level=settings.log_level, as_json=settings.log_json)
    return build_app(settings)
