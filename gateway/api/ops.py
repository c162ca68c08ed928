"""Operations: readiness, Prometheus metrics, the OpenAPI document and its reference page."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from importlib import resources

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.api.auth import services
from gateway.api.responses import JSON
from gateway.openapi import document, page_paths
from gateway.services import Services
from sessions.state import DeviceStatus

DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>wagate API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/static/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script></body></html>
"""

DOCS_INIT = "window.ui = SwaggerUIBundle({url: '/openapi.json', dom_id: '#swagger-ui'});\n"


async def readyz(request: Request) -> Response:
    svc = services(request)

    async def check() -> str:
        try:
            await svc.store.set_meta("ready_probe", str(time.time()))
            return "writable"
        except Exception as exc:  # readiness reports, it does not raise
            return f"failed: {type(exc).__name__}"

    store: str = await svc.readiness.get(check)
    checks = {"store": store, "sessions": "restored" if svc.manager.ready else "starting"}
    ready = store == "writable" and svc.manager.ready
    return JSON({"status": "ready" if ready else "not ready", **checks},
                status_code=200 if ready else 503)


@dataclass(frozen=True)
class Gauges:
    devices: dict[str, int]  # every device state, 0 included
    messages: dict[str, int]  # messages by status
    webhook_backlog: int  # webhook deliveries pending

    @property
    def queue_depth(self) -> int:
        """Messages waiting for their device (queued or sending)."""
        return self.messages.get("queued", 0) + self.messages.get("sending", 0)


async def gauges(svc: Services) -> Gauges:
    """The state /metrics exports as gauges and the operator console's health page shows: device
    states from the session manager, message and delivery counts from the store, read now."""
    async def counts() -> tuple[dict[str, int], int]:
        return await svc.store.message_counts(), await svc.store.webhook_backlog()

    states = Counter(sup.status.value for sup in svc.manager)
    messages, backlog = await svc.gauges.get(counts)  # table scans: at most one a second
    return Gauges({state.value: states.get(state.value, 0) for state in DeviceStatus},
                  messages, backlog)


async def metrics(request: Request) -> Response:
    svc = services(request)
    m = svc.metrics
    now = await gauges(svc)
    for state, count in now.devices.items():
        m.devices.labels(state).set(count)
    for status, count in now.messages.items():
        m.messages.labels(status).set(count)
    m.queue_depth.set(now.queue_depth)
    m.webhook_backlog.set(now.webhook_backlog)
    return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    svc = services(request)
    pages = page_paths(list(request.app.routes))
    return JSON(document(svc.config.sessions.driver == "simulated", svc.config.public_url,
                         pages))


async def docs(request: Request) -> Response:
    return HTMLResponse(DOCS_PAGE)


async def docs_init(request: Request) -> Response:
    return Response(DOCS_INIT, media_type="text/javascript")


def routes() -> list[BaseRoute]:
    swagger = resources.files("swagger_ui").joinpath("static")
    return [
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
        Route("/docs/init.js", docs_init, methods=["GET"]),
        Mount("/docs/static", app=StaticFiles(directory=str(swagger)), name="swagger"),
    ]
