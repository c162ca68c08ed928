"""What a wagate plugin declares: a name, the upstream it bridges, and its life cycle."""

from __future__ import annotations

from typing import Protocol

from starlette.routing import BaseRoute


class Plugin(Protocol):
    name: str
    """Short identifier, used in config (`[plugins.<name>]`) and in routes (`/plugins/<name>`)."""

    async def setup(self) -> None:
        """Open upstream clients; raise `WagateError` if the upstream is misconfigured."""

    async def unload(self) -> None:
        """Close upstream clients."""

    def routes(self) -> list[BaseRoute]:
        """Partner-facing routes the plugin adds under /plugins/<name>."""
