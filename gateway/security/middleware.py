"""HTTP hardening as one ASGI middleware:

- request headers: more than `server.max_header_count` or `server.max_header_bytes` in all is
  `431 headers_too_large` (uvicorn's own parser limits come first);
- a request timeout (`server.request_timeout`) until the response starts, reading the body
  included: `503 request_timeout`. Send URLs (`/wa/…`, bounded by `delivery.send_wait`, so a
  committed send always gets its answer), event streams and the operator's long polls are exempt;
- X-RateLimit-Limit / -Remaining / -Reset on every response to a request that was charged to a
  rate-limit bucket (`gateway.security.guard.charge`);
- `X-Content-Type-Options: nosniff` on every response, and on HTML that did not set its own, a
  strict Content-Security-Policy, `X-Frame-Options: DENY` and `Referrer-Policy: no-referrer`.

CORS is off unless `server.cors_origins` names origins (then Starlette's CORSMiddleware runs in
front of this one); without it no Access-Control-* header is ever sent.
"""

from __future__ import annotations

import math

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.responses import error_response
from gateway.config import ServerConfig
from gateway.errors import HeadersTooLarge, ServiceUnavailable

# For HTML that set no policy of its own (the Swagger UI page): same-origin only; Swagger UI
# sets inline styles and shows data: images.
HTML_CSP = (b"default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            b"script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
HTML_HEADERS = ((b"content-security-policy", HTML_CSP), (b"x-frame-options", b"DENY"),
                (b"referrer-policy", b"no-referrer"))
NOSNIFF = (b"x-content-type-options", b"nosniff")


def timeout_exempt(path: str) -> bool:
    return path.startswith(("/wa/", "/admin/devices/")) or path.endswith("/events")


class Hardening:
    def __init__(self, app: ASGIApp, config: ServerConfig) -> None:
        self.app = app
        self.max_count = config.max_header_count
        self.max_bytes = config.max_header_bytes
        self.timeout = config.request_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        if len(headers) > self.max_count or \
                sum(len(n) + len(v) for n, v in headers) > self.max_bytes:
            await error_response(HeadersTooLarge(
                f"request headers: at most {self.max_count} headers and {self.max_bytes} bytes"
            ))(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        started = False
        deadline: anyio.CancelScope | None = None

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if deadline is not None:
                    deadline.deadline = math.inf  # the answer is on its way: never cut it
                extra = [NOSNIFF]
                rate = state.get("ratelimit")
                if rate is not None:
                    extra += rate.headers()
                sent = message.get("headers", [])
                ctype = next((v for n, v in sent if n == b"content-type"), b"")
                if ctype.startswith(b"text/html") and not any(
                        n == b"content-security-policy" for n, _ in sent):
                    extra += HTML_HEADERS
                names = {n for n, _ in sent}
                message["headers"] = [*sent, *(h for h in extra if h[0] not in names)]
            await send(message)

        if self.timeout <= 0 or timeout_exempt(scope["path"]):
            await self.app(scope, receive, guarded_send)  # no cancel scope on the send path
            return
        deadline = anyio.CancelScope(deadline=anyio.current_time() + self.timeout)
        with deadline:
            await self.app(scope, receive, guarded_send)
        if deadline.cancelled_caught and not started:
            await error_response(ServiceUnavailable(
                f"the request took longer than {self.timeout:g}s", code="request_timeout",
            ))(scope, receive, send)
