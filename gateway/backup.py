"""Online backups: SQLite's backup API (consistent while the daemon writes) plus the secret.

A backup holds everything a restore needs: the database, the server secret (without it no send
URL or user token can be shown again, and the daemon refuses a database whose secret differs),
the drivers' WhatsApp stores (so linked devices reconnect without a new scan), and the media
blobs queued messages still need.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from gateway.config import Config
from gateway.errors import WagateError
from gateway.tokens import SECRET_FILE


def _copy_db(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    os.chmod(target, 0o600)


def backup(config: Config, destination: Path) -> list[Path]:
    """Write a backup into `destination` (a new or empty directory); return the files."""
    if destination.exists() and any(destination.iterdir()):
        raise WagateError(f"backup: {destination} is not empty")
    if not config.database_path.exists():
        raise WagateError(f"backup: no database at {config.database_path}")
    destination.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    _copy_db(config.database_path, destination / "wagate.db")
    written.append(destination / "wagate.db")
    secret = config.data_dir / SECRET_FILE
    if secret.exists():
        shutil.copy2(secret, destination / SECRET_FILE)
        os.chmod(destination / SECRET_FILE, 0o600)
        written.append(destination / SECRET_FILE)
    stores = [config.data_dir / "simulated.db", *sorted((config.data_dir / "neonize").glob("*.db"))]
    for store in stores:
        if store.exists():
            target = destination / store.relative_to(config.data_dir)
            _copy_db(store, target)
            written.append(target)
    # Media after the database: a blob is on disk before its message commits, so every blob a
    # queued message in the copy needs is here too.
    media = config.data_dir / "media"
    for blob in sorted(media.glob("*/*")) if media.is_dir() else []:
        if blob.is_file() and not blob.name.startswith(".tmp-"):
            target = destination / blob.relative_to(config.data_dir)
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copy2(blob, target)
            written.append(target)
    return written
