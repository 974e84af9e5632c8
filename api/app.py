"""The Starlette application: routes, middleware, error handlers and the lifespan that opens the
pools. ``create_app`` is the uvicorn factory."""

from __future__ import annotations

import contextlib
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
from api.errors import ApiError, UnexpectedErrorMiddleware, api_error_handler, http_exception_handler
from api.metrics import MetricsMiddleware
from api.openapi import spec
from api.responses import JSON
from api.routes import documents, health, index_jobs, search
from shared.db import create_pool
from shared.queue import create_redis
from shared.settings import Settings, load_settings


async def openapi(request: Request) -> Response:
    return JSON(spec())


ROUTES = [
    Route("/v1/documents", documents.post_document, methods=["POST"]),
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
        app.state.ctx = AppContext(
            settings=settings, pool=pool, redis=redis, queued_jobs=QueuedJobsGuard(settings)
        )
        logger.info("api_started", host=settings.host, port=settings.port)
        try:
            yield
        finally:
            await redis.aclose()
            await pool.close()

    return Starlette(
        routes=ROUTES,
        middleware=[Middleware(MetricsMiddleware), Middleware(UnexpectedErrorMiddleware)],
        exception_handlers={ApiError: api_error_handler, HTTPException: http_exception_handler},
        lifespan=lifespan,
    )


def create_app() -> Starlette:
    """uvicorn factory: settings from the environment (logging is set up by ``searchhub api``)."""
    return build_app(load_settings())
