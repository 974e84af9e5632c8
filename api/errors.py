"""One exception type per error code of the contract, and the handlers that turn them into its body:
``{"error": {"code", "message", "details"}}``. No traceback ever reaches a client."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence

from loguru import logger
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.responses import JSON
from shared.db import is_unavailable
from shared.queue import REDIS_UNAVAILABLE_ERRORS
from shared.schemas import ErrorBody, ErrorDetail, ErrorInfo


class ApiError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(
        self,
        message: str,
        details: Sequence[ErrorDetail] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = list(details)
        self.headers = dict(headers or {})

    def response(self) -> Response:
        body = ErrorBody(ErrorInfo(code=self.code, message=self.message, details=self.details))
        return JSON(body, status_code=self.status_code, headers=self.headers)


class InvalidJson(ApiError):
    status_code, code = 400, "invalid_json"


class Unauthorized(ApiError):
    status_code, code = 401, "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class NotFound(ApiError):
    status_code, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status_code, code = 405, "method_not_allowed"


class Conflict(ApiError):
    status_code, code = 409, "conflict"


class PayloadTooLarge(ApiError):
    status_code, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status_code, code = 415, "unsupported_media_type"


class ValidationFailed(ApiError):
    status_code, code = 422, "validation_error"


class RateLimited(ApiError):
    status_code, code = 429, "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class Unavailable(ApiError):
    status_code, code = 503, "unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "1"})


def invalid(path: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{path}: {message}", [ErrorDetail(path=path, message=message)])


async def api_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    # Starlette's router raises these for unknown routes and methods.
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return NotFound(f"no route for {request.url.path}").response()
    if exc.status_code == 405:
        error = MethodNotAllowed(
            f"{request.method} is not allowed on {request.url.path}", headers=exc.headers
        )
        return error.response()
    error = ApiError(exc.detail, headers=exc.headers)
    error.status_code, error.code = exc.status_code, "http_error"
    return error.response()


def unexpected_error(exc: Exception, route: str | None) -> Response:
    """The response for an exception nobody handled: a 500 (or a 503 if a store is away) in the
    contract's body with a request id; the traceback goes to the log under the same id, once."""
    request_id = secrets.token_hex(8)
    if is_unavailable(exc) or isinstance(exc, REDIS_UNAVAILABLE_ERRORS):
        logger.warning("store_unavailable", request_id=request_id, route=route, error=repr(exc))
        error: ApiError = Unavailable("a backing store is unavailable; retry shortly")
    else:
        logger.opt(exception=exc).error("unhandled_error", request_id=request_id, route=route)
        error = ApiError(f"internal error; quote request id {request_id} when reporting it")
    response = error.response()
    response.headers["X-Request-Id"] = request_id
    return response


class UnexpectedErrorMiddleware:
    """Last line: an exception nobody handled becomes ``unexpected_error``'s response, unless the
    response had started (then it is only logged, and the server closes the connection)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            response = unexpected_error(exc, getattr(scope.get("route"), "path", scope.get("path")))
            if not started:
                await response(scope, receive, send)
