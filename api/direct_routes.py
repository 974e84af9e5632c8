"""The ingest routes called straight from the server, around Starlette's middleware and router.

Under load the API is one Python process at a full core, and for each request Starlette's stack
(its error and exception middleware, ours for metrics and unexpected errors, the router and the
request wrapper) is five coroutine layers deep, each wrapping ``send``. For the two routes that
take the load, ``SearchHubApp`` matches the exact method and path itself and does what that stack
does for them, once: the contract's error body for an ``ApiError`` or ``HTTPException``, a 500 or
503 with a request id for anything else, and the same request metrics under the route's template.
In interleaved A/B runs of the ingest bench that was worth 15 to 27 % of its requests/s.
Every other request, and any path these do not match exactly, goes through Starlette as before.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from api.errors import ApiError, http_exception_handler, unexpected_error
from api.metrics import HTTP


class SearchHubApp(Starlette):
    def __init__(self, *, direct: Sequence[Route], **kwargs: object) -> None:
        """``direct``: routes (also among ``routes``, for the spec and for 405s) whose endpoint is
        called directly when a request's method and path are exactly theirs."""
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._direct = {(method, route.path): route for route in direct for method in route.methods or ()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._direct.get((scope.get("method"), scope.get("path")))
        if route is None or scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self
        scope["route"] = route
        start = time.perf_counter()
        request = Request(scope, receive)
        try:
            response = await route.endpoint(request)
        except ApiError as exc:
            response = exc.response()
        except HTTPException as exc:
            response = await http_exception_handler(request, exc)
        except Exception as exc:
            response = unexpected_error(exc, route.path)
        method = scope["method"]
        HTTP.observe(method, route.path, time.perf_counter() - start)
        HTTP.count(method, route.path, str(response.status_code))
        try:
            await response(scope, receive, send)
        except Exception as exc:
            unexpected_error(exc, route.path)  # logged; the response had started, nothing to send
