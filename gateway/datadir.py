"""The data directory: database, server secret, drivers' WhatsApp stores, and its lock."""

from __future__ import annotations

import fcntl
import os
from typing import IO

from gateway.config import Config
from gateway.errors import ConfigError, WagateError
from gateway.store import Store
from gateway.tokens import TokenVault

LOCK_FILE = "wagate.lock"
FINGERPRINT_META = "server_secret_fingerprint"


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


def lock_data_dir(config: Config) -> IO[str]:
    """Hold this for the daemon's life: two daemons on one data directory would run every
    WhatsApp session twice (and WhatsApp answers that with "replaced" or a ban)."""
    handle = (config.data_dir / LOCK_FILE).open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        pid = handle.read().strip() or "?"
        handle.close()
        raise WagateError(f"another wagate (pid {pid}) is serving {config.data_dir}") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


async def check_secret(store: Store, vault: TokenVault) -> None:
    """Refuse a server secret that is not the one this database's tokens were made with."""
    fingerprint = vault.fingerprint()
    stored = await store.get_meta(FINGERPRINT_META)
    if stored is None:
        await store.set_meta(FINGERPRINT_META, fingerprint)
    elif stored != fingerprint:
        raise ConfigError(
            "storage.data_dir: server.secret does not belong to this database (restored one "
            "without the other?); put back the matching server.secret from the backup")
