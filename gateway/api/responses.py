"""JSON responses and the mapping of every error onto the seed's envelope."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import ApiError

log = logging.getLogger("wagate.api")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 413: "payload_too_large", 429: "rate_limited"}


class JSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def success(status_code: int = 200, **data: Any) -> JSON:
    return JSON({"type": "success", **data}, status_code=status_code)


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def error_response(exc: ApiError) -> JSON:
    return JSON(exc.body(), status_code=exc.status, headers=exc.headers or None)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 (unknown route, wrong method) in our envelope, not HTML."""
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = {404: "no such route", 405: f"method {request.method} not allowed here"}.get(
        exc.status_code, str(exc.detail))
    return JSON({"type": "error", "code": code, "message": message},
                status_code=exc.status_code, headers=exc.headers)


async def handle_unexpected(request: Request, exc: Exception) -> Response:
    """Anything else: logged with its traceback, answered without it."""
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSON({"type": "error", "code": "internal_error",
                 "message": "internal error; the operator's log has the details"},
                status_code=500)
