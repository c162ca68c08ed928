"""Liveness."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway import __version__
from gateway.api.auth import services
from gateway.api.responses import JSON


async def healthz(request: Request) -> Response:
    svc = services(request)
    return JSON({"status": "ok", "version": __version__, "driver": svc.driver.name,
                 "sessions_ready": svc.manager.ready})


routes = [Route("/healthz", healthz, methods=["GET"])]
