"""A webhook receiver on loopback: records what it gets, can be down (503), slow, or gone (410)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.loopback import Loopback


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
    inflight: int = 0
    peak: int = 0  # the most requests it was answering at once
    _server: Loopback | None = None

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.inflight -= 1
        if self.mode == "down":
            return PlainTextResponse("down for maintenance", status_code=503)
        if self.mode == "gone":
            return PlainTextResponse("gone", status_code=410)
        self.received.append(Received(dict(request.headers), body))
        return PlainTextResponse("ok")

    async def start(self) -> None:
        self._server = Loopback(Starlette(routes=[Route("/hook", self._hook, methods=["POST"])]))
        await self._server.start()
        self.url = f"{self._server.url}/hook"

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()

    def types(self) -> list[str]:
        import json

        return [json.loads(r.body)["type"] for r in self.received]

    def events(self, event_type: str) -> list[dict[str, Any]]:
        import json

        return [json.loads(r.body) for r in self.received if json.loads(r.body)["type"]
                == event_type]
