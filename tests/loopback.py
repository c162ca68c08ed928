"""An ASGI app served over real HTTP on 127.0.0.1, inside the test's own event loop.

The gateway under test, the webhook receiver and the media file server all run this way. It is
uvicorn, minus its fixed 0.1 s pauses (its main loop polls `should_exit`, its shutdown sleeps
once): the suite starts and stops a few hundred of these.
"""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from starlette.types import ASGIApp


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit = asyncio.Event()

    async def main_loop(self) -> None:
        await self.on_tick(0)  # the default headers (Date), as uvicorn's first tick sets them
        await self._exit.wait()

    def exit(self, force: bool) -> None:
        self.should_exit = True
        self.force_exit = force
        self._exit.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's: stop accepting, end connections, wait for their tasks (not when forced),
        then the lifespan's shutdown."""
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.timeout_graceful_shutdown or 5.0)
        while (self.server_state.connections or self.server_state.tasks) and \
                not self.force_exit and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for task in self.server_state.tasks:
            task.cancel()
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()


class Loopback:
    def __init__(self, app: ASGIApp, *, lifespan: str = "off") -> None:
        self.app = app
        self.lifespan = lifespan
        self.port = 0
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> None:
        """Serve on `port` (0: any free one; a restart passes the old one back)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        self.port = sock.getsockname()[1]
        self._server = _Server(uvicorn.Config(self.app, log_config=None, lifespan=self.lifespan,
                                              timeout_graceful_shutdown=2))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("server did not start")
            await asyncio.sleep(0.01)

    async def stop(self, force: bool = False) -> None:
        """`force`: do not wait for requests still streaming."""
        if self._server is not None and self._task is not None:
            self._server.exit(force)
            await self._task
            self._server = self._task = None
