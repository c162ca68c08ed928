"""`wagate doctor`: checks an operator can run before calling for help, each with its fix."""

from __future__ import annotations

import ctypes.util
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

from gateway.config import Config
from gateway.datadir import FINGERPRINT_META
from gateway.tokens import SECRET_FILE, TokenVault

MIN_FREE_BYTES = 1 << 30


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def run_checks(config: Config) -> list[Check]:
    return [check_data_dir(config), check_disk(config), check_database(config),
            check_secret(config), check_libmagic(), check_neonize(config), check_clock(),
            check_public_url(config)]


def check_data_dir(config: Config) -> Check:
    path = config.data_dir
    if not path.is_dir():
        return Check("data directory", False, f"{path} does not exist",
                     "run `wagate init` (or `wagate serve`, which creates it)")
    mode = stat.S_IMODE(path.stat().st_mode)
    if not os.access(path, os.W_OK):
        return Check("data directory", False, f"{path} is not writable by uid {os.getuid()}",
                     f"chown the directory to the user that runs wagate: chown -R {os.getuid()} "
                     f"{path}")
    if mode & 0o077:
        return Check("data directory", False, f"{path} is mode {mode:o}: others can read it",
                     f"chmod 700 {path}")
    return Check("data directory", True, f"{path} (mode {mode:o})")


def check_disk(config: Config) -> Check:
    path = config.data_dir if config.data_dir.exists() else config.data_dir.parent
    free = shutil.disk_usage(path if str(path) else ".").free
    ok = free >= MIN_FREE_BYTES
    return Check("disk space", ok, f"{free / (1 << 30):.1f} GiB free",
                 "" if ok else "free space on the data directory's disk (SQLite needs room)")


def check_database(config: Config) -> Check:
    db = config.database_path
    if not db.exists():
        return Check("database", False, f"{db} does not exist", "run `wagate init`")
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            result = conn.execute("PRAGMA quick_check").fetchone()[0]
            version = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
    except sqlite3.Error as exc:
        return Check("database", False, f"{db}: {exc}", "restore the last backup")
    ok = result == "ok"
    return Check("database", ok, f"{db}: schema v{version}, integrity {result}",
                 "" if ok else "stop wagate and restore the last backup (docs/operations.md)")


def check_secret(config: Config) -> Check:
    path = config.data_dir / SECRET_FILE
    if not path.exists():
        return Check("server secret", False, f"{path} missing",
                     "restore it from the backup taken with the database")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return Check("server secret", False, f"{path} is mode {mode:o}", f"chmod 600 {path}")
    try:
        fingerprint = TokenVault.load_or_create(config.data_dir).fingerprint()
        with sqlite3.connect(f"file:{config.database_path}?mode=ro", uri=True) as conn:
            has_meta = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone()
            row = conn.execute("SELECT value FROM meta WHERE key = ?",
                               (FINGERPRINT_META,)).fetchone() if has_meta else None
    except (sqlite3.Error, ValueError) as exc:
        return Check("server secret", False, str(exc), "restore secret and database together")
    if row is not None and row[0] != fingerprint:
        return Check("server secret", False, "does not belong to this database",
                     "restore the server.secret saved with this database")
    return Check("server secret", True, f"{path} (mode {mode:o})")


def check_libmagic() -> Check:
    found = ctypes.util.find_library("magic")
    return Check("libmagic", bool(found), found or "not found",
                 "" if found else "apt-get install libmagic1")


def check_neonize(config: Config) -> Check:
    try:
        result = subprocess.run([sys.executable, "-c", "import neonize"], capture_output=True,
                                text=True, timeout=60, env={**os.environ, "PYTHONWARNINGS":
                                                            "ignore"})
    except subprocess.TimeoutExpired:
        return Check("neonize library", False, "import took over 60 s",
                     "check that the neonize wheel ships its .so (no download at import)")
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
        return Check("neonize library", config.sessions.driver != "neonize", last[:200],
                     "needs glibc >= 2.34 and libmagic1; reinstall with `make venv`")
    return Check("neonize library", True, "loads")


def check_clock() -> Check:
    now = time.time()
    if now < 1_735_689_600:  # 2025-01-01: WhatsApp's TLS and signatures need a real clock
        return Check("clock", False, time.strftime("%Y-%m-%d", time.gmtime(now)),
                     "set the system clock (enable NTP: timedatectl set-ntp true)")
    synced = ""
    timedatectl = shutil.which("timedatectl")
    if timedatectl:
        out = subprocess.run(  # noqa: S603 - a fixed command found on PATH
            [timedatectl, "show", "-p", "NTPSynchronized", "--value"],
            capture_output=True, text=True, timeout=5).stdout.strip()
        if out == "no":
            return Check("clock", False, "not synchronised by NTP",
                         "timedatectl set-ntp true")
        synced = ", NTP synchronised" if out == "yes" else ""
    return Check("clock", True, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)) + synced)


def check_public_url(config: Config) -> Check:
    url = f"{config.public_url}/healthz"
    try:
        r = httpx.get(url, timeout=3)
    except httpx.HTTPError as exc:
        return Check("public URL", False, f"{url}: {type(exc).__name__}",
                     "start wagate, or set WAGATE_PUBLIC_URL to the address clients use "
                     "(the reverse proxy's https URL)")
    ok = r.status_code == 200 and r.headers.get("content-type", "").startswith("application/json")
    return Check("public URL", ok, f"{url}: HTTP {r.status_code}",
                 "" if ok else "the URL does not reach wagate: check the proxy's upstream")
