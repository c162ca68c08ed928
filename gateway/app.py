"""Build the Starlette application: routes, error mapping, middleware and the lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from gateway.api import admin, devices, health, messages, partners, send, sim, users
from gateway.api.responses import handle_api_error, handle_http_exception, handle_unexpected
from gateway.config import Config
from gateway.datadir import check_secret, init_data_dir
from gateway.errors import ApiError
from gateway.middleware import BodyLimit
from gateway.services import Services
from gateway.store import open_store
from sessions.drivers import load_driver
from sessions.manager import SessionManager

log = logging.getLogger("wagate")


def build_routes(config: Config) -> list[BaseRoute]:
    routes: list[BaseRoute] = [*health.routes, *partners.routes, *users.routes,
                               *devices.routes, *send.routes, *messages.routes,
                               *admin.routes]
    if config.sessions.driver == "simulated":
        routes += sim.routes
    return routes


def create_app(config: Config) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        vault = init_data_dir(config)
        store = await open_store(str(config.database_path))
        try:
            await check_secret(store, vault)
            driver = load_driver(config)
            manager = SessionManager(store, driver, config.sessions, config.delivery)
            # Half the budget for in-flight requests (uvicorn), half for the sessions.
            async with manager.running(shutdown_timeout=config.server.shutdown_timeout / 2):
                app.state.services = Services(config, store, vault, driver, manager)
                log.info("wagate ready on %s (driver: %s)", config.public_url, driver.name)
                yield
        finally:
            await store.close()

    return Starlette(
        routes=build_routes(config),
        middleware=[Middleware(BodyLimit, limit=config.server.max_body_bytes)],
        exception_handlers={
            ApiError: handle_api_error,
            HTTPException: handle_http_exception,
            Exception: handle_unexpected,
        },
        lifespan=lifespan,
    )
