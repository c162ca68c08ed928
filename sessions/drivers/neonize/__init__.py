"""The real WhatsApp driver, on neonize (whatsmeow through a Go shared library).

The daemon imports only `NeonizeDriver` (driver.py), which runs no neonize code itself; neonize
is imported inside worker processes (worker.py, host.py), and by convert.py, which only they and
the tests use. See docs/neonize.md.
"""

from __future__ import annotations

from sessions.drivers.neonize.driver import NeonizeDriver, NeonizeSession

__all__ = ["NeonizeDriver", "NeonizeSession"]
