"""HTML for people: the device link page (`/link/…`) and the partner console (`/console`)."""

from __future__ import annotations

from starlette.routing import BaseRoute

from gateway.pages import console, link
from gateway.pages.render import static_mount


def routes() -> list[BaseRoute]:
    return [*link.routes, *console.routes, static_mount()]
