"""Operations: readiness, Prometheus metrics, the OpenAPI document and its reference page."""

from __future__ import annotations

import time
from collections import Counter
from importlib import resources

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.api.auth import services
from gateway.api.responses import JSON
from gateway.openapi import document, page_paths
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
    checks: dict[str, str] = {}
    try:
        await svc.store.set_meta("ready_probe", str(time.time()))
        checks["store"] = "writable"
    except Exception as exc:  # readiness reports, it does not raise
        checks["store"] = f"failed: {type(exc).__name__}"
    checks["sessions"] = "restored" if svc.manager.ready else "starting"
    ready = checks["store"] == "writable" and svc.manager.ready
    return JSON({"status": "ready" if ready else "not ready", **checks},
                status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    svc = services(request)
    m = svc.metrics
    states = Counter(sup.status.value for sup in svc.manager)
    for state in DeviceStatus:
        m.devices.labels(state.value).set(states.get(state.value, 0))
    counts = await svc.store.message_counts()
    for status, count in counts.items():
        m.messages.labels(status).set(count)
    m.queue_depth.set(counts.get("queued", 0) + counts.get("sending", 0))
    m.webhook_backlog.set(await svc.store.webhook_backlog())
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
