"""HTML for people: the device link page (`/link/…`), the partner console (`/console`) and the
operator console (`/console/operator`)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from gateway.pages import console, link, operator_console
from gateway.pages.render import static_mount


def routes() -> list[BaseRoute]:
    return [*link.routes, *console.routes, *operator_console.routes, static_mount()]
