"""Discover plugins by the `wagate.plugins` entry-point group (the datasette/pluggy way)."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Any

log = logging.getLogger("wagate.plugins")

GROUP = "wagate.plugins"


def discover() -> dict[str, Any]:
    """Name -> plugin factory for every installed plugin; a broken one is logged and skipped."""
    found: dict[str, Any] = {}
    for ep in entry_points(group=GROUP):
        try:
            found[ep.name] = ep.load()
        except Exception:
            log.exception("plugin %s failed to load; skipped", ep.name)
    return found
