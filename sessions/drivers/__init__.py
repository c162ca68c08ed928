"""WhatsApp drivers behind one Protocol (`base.Driver`)."""

from __future__ import annotations

from pathlib import Path

from gateway.config import Config
from sessions.drivers.base import Driver


def load_driver(config: Config) -> Driver:
    """The driver the config names; imported lazily so the simulator never loads neonize."""
    name = config.sessions.driver
    if name == "simulated":
        from sessions.drivers.simulated import SimulatedDriver

        return SimulatedDriver(config.simulated, Path(config.data_dir))
    if name == "neonize":
        from sessions.drivers.neonize import NeonizeDriver

        return NeonizeDriver(config.neonize, Path(config.data_dir))
    from gateway.errors import ConfigError

    raise ConfigError(f"sessions.driver: the {name!r} driver is not available in this build")
