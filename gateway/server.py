"""Run the daemon under uvicorn: SIGTERM stops accepting, drains requests, closes sessions."""

from __future__ import annotations

import uvicorn

from gateway.app import create_app
from gateway.config import Config
from gateway.datadir import init_data_dir
from gateway.logs import configure_logging
from sessions.drivers import load_driver


def serve(config: Config) -> None:
    configure_logging(config.server.log_level, config.server.log_format)
    init_data_dir(config)
    load_driver(config)  # fail on a bad driver setting before binding the port
    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(
        app,
        host=config.server.host,
        port=config.server.port,
        log_config=None,
        access_log=config.server.access_log,
        server_header=False,
        timeout_graceful_shutdown=max(1, int(config.server.shutdown_timeout / 2)),
        lifespan="on",
    ))
    server.run()
    if not server.started:
        raise SystemExit(1)
