"""Build the Starlette application: routes, error mapping, middleware and the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from gateway import __version__, housekeeping, pages
from gateway.api import (
    admin,
    devices,
    health,
    keys,
    links,
    messages,
    ops,
    partners,
    send,
    sim,
    users,
    webhooks,
)
from gateway.api.responses import handle_api_error, handle_http_exception, handle_unexpected
from gateway.config import Config
from gateway.datadir import check_secret, init_data_dir
from gateway.errors import ApiError
from gateway.media import MediaStore
from gateway.metrics import Metrics
from gateway.middleware import BodyLimit, RequestContext
from gateway.security.guard import Security
from gateway.security.middleware import Hardening
from gateway.services import Services
from gateway.store import Store, open_store
from gateway.tls import client_context
from gateway.webhooks.sender import WebhookSender
from sessions.drivers import load_driver
from sessions.manager import Listener, SessionManager
from sessions.supervisor import DeviceSupervisor

log = logging.getLogger("wagate")

# Routes that take a multipart media upload, so a body up to delivery.max_media_bytes (plus the
# form's own overhead) instead of server.max_body_bytes.
UPLOAD_OVERHEAD = 256 * 1024


def takes_upload(path: str) -> bool:
    return (path.startswith("/wa/") and path.endswith("/send")) or (
        path.startswith("/partner/devices/") and path.endswith("/messages"))


def device_events(store: Store, sender: WebhookSender) -> Listener:
    """Device and inbound events become webhook deliveries."""

    async def listener(sup: DeviceSupervisor, name: str, data: dict[str, Any]) -> None:
        await store.fanout(sup.partner_id, sup.device_id, name,
                           {"session_id": sup.key, "device_name": sup.name,
                            "status": sup.status.value, **data})
        sender.wake()

    return listener


def build_routes(config: Config) -> list[BaseRoute]:
    # The send URL first: it is the hot path, and Starlette matches routes in order.
    routes: list[BaseRoute] = [*send.routes, *health.routes, *partners.routes, *keys.routes,
                               *users.routes, *devices.routes, *messages.routes,
                               *webhooks.routes, *ops.routes(),
                               *admin.routes, *links.routes, *pages.routes()]
    if config.sessions.driver == "simulated":
        routes += sim.routes
    return routes


def cors(config: Config) -> list[Middleware]:
    """CORS only for the origins the operator named; none configured: no CORS headers at all."""
    origins = [o.strip() for o in config.server.cors_origins.split(",") if o.strip()]
    if not origins:
        return []
    return [Middleware(
        CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["x-api-key", "x-user-token", "content-type", "idempotency-key",
                       "x-request-id"],
        expose_headers=["x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset",
                        "retry-after", "x-request-id", "idempotent-replayed"],
        max_age=600)]


def create_app(config: Config) -> Starlette:
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        vault = init_data_dir(config)
        store = await open_store(str(config.database_path))
        try:
            await check_secret(store, vault)
            driver = load_driver(config)
            media = MediaStore(config.data_dir / "media")
            manager = SessionManager(store, driver, config.sessions, config.delivery, media)
            manager.held.update(await store.partner_ids_with_status("suspended"))
            sender = WebhookSender(store, vault, config.webhooks, metrics=metrics)
            # No redirects here: `fetch_media` follows them itself, vetting every hop.
            http = httpx.AsyncClient(follow_redirects=False, verify=client_context(),
                                     timeout=config.delivery.media_fetch_timeout,
                                     headers={"user-agent": f"wagate/{__version__}"})
            manager.listeners.append(device_events(store, sender))
            # Half the budget for in-flight requests (uvicorn), half for the sessions.
            async with manager.running(shutdown_timeout=config.server.shutdown_timeout / 2), \
                    anyio.create_task_group() as tg:
                tg.start_soon(sender.run, name="webhook sender")
                tg.start_soon(housekeeping.run, store, config, name="housekeeping")
                app.state.services = Services(config, store, vault, driver, manager, sender,
                                              metrics, media, http,
                                              security=Security(config.security))
                log.info("wagate ready on %s (driver: %s)", config.public_url, driver.name)
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
            await sender.aclose()
            await http.aclose()
        finally:
            await store.close()

    return Starlette(
        routes=build_routes(config),
        middleware=[*cors(config),
                    Middleware(RequestContext, metrics=metrics),
                    Middleware(Hardening, config=config.server),
                    Middleware(BodyLimit, limit=config.server.max_body_bytes,
                               upload_limit=config.delivery.max_media_bytes + UPLOAD_OVERHEAD,
                               upload_paths=takes_upload)],
        exception_handlers={
            ApiError: handle_api_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
