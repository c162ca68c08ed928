"""The data directory: database, server secret, drivers' WhatsApp stores."""

from __future__ import annotations

import os

from gateway.config import Config
from gateway.errors import ConfigError
from gateway.tokens import TokenVault


def init_data_dir(config: Config) -> TokenVault:
    """Create the directory (0700) and the server secret if missing; return the vault."""
    path = config.data_dir
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not os.access(path, os.W_OK):
            raise ConfigError(f"storage.data_dir: {path} is not writable")
        return TokenVault.load_or_create(path)
    except OSError as exc:
        raise ConfigError(f"storage.data_dir: {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"storage.data_dir: {path}: bad server secret: {exc}") from None
