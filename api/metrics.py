"""Prometheus metrics of the API: requests by route template and status, and their latency."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter("searchhub_http_requests_total", "HTTP requests answered.", ["method", "route", "status"])
LATENCY = Histogram(
    "searchhub_http_request_duration_seconds",
    "Time from request to response start.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ENQUEUE_FAILURES = Counter(
    "searchhub_enqueue_failures_total", "Enqueues that failed or timed out (the reconciler re-drives them)."
)


class RequestMetrics:
    """REQUESTS and LATENCY by method and route template; labels() takes a lock and builds a key on
    every call, so the children (few, fixed label sets) are kept."""

    def __init__(self) -> None:
        self._latency: dict[tuple[str, str], Any] = {}
        self._requests: dict[tuple[str, str, str], Any] = {}

    def observe(self, method: str, route: str, seconds: float) -> None:
        child = self._latency.get((method, route))
        if child is None:
            child = self._latency[(method, route)] = LATENCY.labels(method, route)
        child.observe(seconds)

    def count(self, method: str, route: str, status: str) -> None:
        child = self._requests.get((method, route, status))
        if child is None:
            child = self._requests[(method, route, status)] = REQUESTS.labels(method, route, status)
        child.inc()


HTTP = RequestMetrics()


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                route = getattr(scope.get("route"), "path", "unmatched")
                HTTP.observe(scope["method"], route, time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            # Route templates, not paths, keep label cardinality bounded.
            HTTP.count(scope["method"], getattr(scope.get("route"), "path", "unmatched"), str(status))
