"""Waiters for a message's first outcome, so a send request can answer "sent" when it is fast.

In memory only: it shortens answers, it carries no state of record (the store does).
"""

from __future__ import annotations

import asyncio


class Outcomes:
    def __init__(self) -> None:
        self._waiters: dict[str, list[asyncio.Future[str]]] = {}

    def watch(self, message_id: str) -> asyncio.Future[str]:
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(message_id, []).append(future)
        return future

    def forget(self, message_id: str, future: asyncio.Future[str]) -> None:
        waiters = self._waiters.get(message_id)
        if waiters and future in waiters:
            waiters.remove(future)
            if not waiters:
                del self._waiters[message_id]

    def resolve(self, message_id: str, status: str) -> None:
        for future in self._waiters.pop(message_id, []):
            if not future.done():
                future.set_result(status)
