"""A webhook receiver on loopback: records what it gets, can be down (503), slow, or gone (410)."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    mode: str = "up"  # up | down | gone
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.mode == "down":
            return PlainTextResponse("down for maintenance", status_code=503)
        if self.mode == "gone":
            return PlainTextResponse("gone", status_code=410)
        self.received.append(Received(dict(request.headers), body))
        return PlainTextResponse("ok")

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
        app = Starlette(routes=[Route("/hook", self._hook, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="off"))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    def types(self) -> list[str]:
        import json

        return [json.loads(r.body)["type"] for r in self.received]

    def events(self, event_type: str) -> list[dict[str, Any]]:
        import json

        return [json.loads(r.body) for r in self.received if json.loads(r.body)["type"]
                == event_type]
