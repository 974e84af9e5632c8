"""Liveness, readiness and metrics: no auth, cheap, never touching tenant data."""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from api.context import context
from api.responses import JSON
from shared.schemas import Health, Readiness

CHECK_TIMEOUT_S = 1.0


async def healthz(request: Request) -> Response:
    return JSON(Health(status="ok"))


async def _check(probe: asyncio.Future | object) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_S)  # type: ignore[arg-type]
    except Exception:
        return "down"
    return "ok"


async def readyz(request: Request) -> Response:
    ctx = context(request)
    postgres, redis = await asyncio.gather(_check(ctx.pool.fetchval("SELECT 1")), _check(ctx.redis.ping()))
    checks = {"postgres": postgres, "redis": redis}
    if "down" in checks.values():
        return JSON(Readiness(status="unavailable", checks=checks), status_code=503)
    return JSON(Readiness(status="ok", checks=checks))


async def metrics(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
