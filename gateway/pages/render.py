"""HTML for people: Jinja2 templates packaged with the wheel, static assets, security headers.

Every HTML answer carries a Content-Security-Policy that allows scripts, styles and images from
this origin only (no inline script, no CDN), cannot be framed, and sends no Referer (link-page
URLs carry their token).
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import __version__
from gateway.qr import qr_png

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
STATIC_PREFIX = "/static"


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _phone(number: str | None) -> str:
    if not number:
        return ""
    return number if number.startswith("+") else f"+{number}"


def _asset(name: str) -> str:
    """A static asset's URL, versioned so an upgrade is not served from a stale cache."""
    return f"{STATIC_PREFIX}/{name}?v={__version__}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=PackageLoader("gateway.pages", "templates"),
                      autoescape=select_autoescape(["html"], default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = _when
    env.filters["phone"] = _phone
    env.globals["asset"] = _asset
    return env


def html(template: str, status_code: int = 200, headers: dict[str, str] | None = None,
         **context: Any) -> HTMLResponse:
    body = environment().get_template(template).render(**context)
    return HTMLResponse(body, status_code=status_code,
                        headers={**SECURITY_HEADERS, **(headers or {})})


def secure(response: Response) -> Response:
    """Security headers on a response built elsewhere (JSON for the pages' scripts, PNG)."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def now() -> float:
    return time.time()


@lru_cache(maxsize=256)
def qr_image(code: str) -> bytes:
    return qr_png(code)


def qr_version(code: str) -> str:
    """Names a QR code in a URL (cache-busting) without putting the code itself there."""
    return hashlib.sha256(code.encode()).hexdigest()[:12]


class _Hardened:
    """Static files with nosniff and a cache lifetime (URLs carry the version)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      (b"x-content-type-options", b"nosniff"),
                                      (b"cache-control", b"public, max-age=3600")]
            await send(message)

        await self.app(scope, receive, with_headers)


def static_mount() -> Mount:
    return Mount(STATIC_PREFIX, app=_Hardened(StaticFiles(packages=[("gateway.pages", "static")])),
                 name="static")
