"""Run the daemon under uvicorn: SIGTERM stops accepting, drains requests, closes sessions."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import sys

import uvicorn

from gateway.app import create_app
from gateway.config import Config
from gateway.datadir import check_secret, init_data_dir, lock_data_dir
from gateway.logs import configure_logging
from gateway.store import open_store
from sessions.drivers import load_driver


async def preflight(config: Config) -> None:
    """Everything that can fail on a bad setup, checked before the port is bound, so it fails
    with one line instead of a lifespan traceback: migrations, the secret, the driver."""
    vault = init_data_dir(config)
    store = await open_store(str(config.database_path))
    try:
        await check_secret(store, vault)
    finally:
        await store.close()
    load_driver(config)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# Young-generation collections every 20,000 container allocations instead of 700, and a full
# collection after 100 (not 10) older ones: measured by bench/send.py, send-URL p99 134-139 ms
# -> 75-83 ms and +12-18 % sends/s at the same peak RSS (80 MB): full collections walking the
# whole heap were the long pauses. docs/performance.md has the runs.
GC_THRESHOLDS = (20_000, 50, 100)


def tune_gc() -> None:
    """Move what startup built (modules, the app, caches' shells) out of the collector's sight
    (`gc.freeze`: it lives as long as the process anyway), then collect less often. Only for
    the daemon: the test process builds many apps, and freezing would keep each one alive."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def serve(config: Config) -> None:
    configure_logging(config.server.log_level, config.server.log_format)
    init_data_dir(config)
    lock = lock_data_dir(config)  # noqa: F841 - held until the process exits
    asyncio.run(preflight(config))
    # The SQLite writer thread needs the GIL back after every call into SQLite while the event
    # loop holds it; a 1 ms switch interval (default 5 ms) measured ~10% more sends/s.
    sys.setswitchinterval(0.001)
    app = create_app(config)
    tune_gc()
    server = uvicorn.Server(uvicorn.Config(
        app,
        host=config.server.host,
        port=config.server.port,
        log_config=None,
        access_log=config.server.access_log,
        server_header=False,
        # uvloop + httptools (uvicorn[standard]) measured several times faster than asyncio +
        # h11; named here so a missing one shows in `loop`/`http` instead of silently "auto".
        loop="uvloop" if _has("uvloop") else "asyncio",
        http="httptools" if _has("httptools") else "h11",
        timeout_graceful_shutdown=max(1, int(config.server.shutdown_timeout / 2)),
        lifespan="on",
    ))
    server.run()
    if not server.started:
        raise SystemExit(1)
