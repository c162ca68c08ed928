"""ASGI middleware: request body cap, request ids and request metrics."""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.responses import error_response
from gateway.errors import PayloadTooLarge
from gateway.logs import request_id
from gateway.metrics import Metrics

_SAFE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Request ids need to be unique, not secret: a random per-process prefix and a counter (a
# random id per request costs a getrandom() syscall on the hot path).
_RID_PREFIX = secrets.token_hex(4)
_rid_counter = itertools.count(1)


class BodyLimit:
    """Refuse bodies over `limit` bytes: by Content-Length up front, else while streaming.

    Multipart bodies on the routes `upload_paths` names (media uploads) may reach
    `upload_limit` instead."""

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int = 0,
                 upload_paths: Callable[[str], bool] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = max(upload_limit, limit)
        self.upload_paths = upload_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        declared = 0
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
            elif name == b"content-type" and value.lower().startswith(b"multipart/form-data") \
                    and self.upload_paths is not None and self.upload_paths(scope["path"]):
                limit = self.upload_limit
        if declared > limit:
            await error_response(_too_large(limit))(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _too_large(limit)
            return message

        await self.app(scope, limited, send)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body larger than {limit} bytes", limit=limit)


class RequestContext:
    """A request id on every log line and response (X-Request-ID), and request metrics by
    route template (never by raw path: that would put tokens in metric labels)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        self._series: dict[tuple[str, str, int], Any] = {}  # labelled children, looked up once

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value.decode("latin-1")
        if not rid or not _SAFE_ID.fullmatch(rid):
            rid = f"{_RID_PREFIX}{next(_rid_counter) & 0xFFFFFFFF:08x}"
        token = request_id.set(rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            key = (template, scope["method"], status)
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = self.metrics.requests.labels(
                    template, scope["method"], str(status))
            series.observe(time.perf_counter() - started)
            request_id.reset(token)
