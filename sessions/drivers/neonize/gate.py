"""A readers-writer gate for neonize's FFI, in asyncio.

neonize's Go side keeps its clients in process-global maps without a lock: a client starting
(`Neonize`) or stopping (`Stop`) writes them, nearly every other call reads them, and a concurrent
write aborts the whole process ("fatal error: concurrent map writes"). Lifecycle calls therefore
take the gate exclusively and every other call shares it. Measured in the notes: with this gate
0 of 8 stress runs aborted, without it 1 in 5.

First come, first served: a waiting writer holds back readers that arrive after it, so a stream
of sends cannot starve a device that wants to start or stop. Release is synchronous, so a task
cancelled at any point can never leave the gate held.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress


class RWGate:
    def __init__(self) -> None:
        self._readers = 0
        self._writer = False
        self._waiters: deque[tuple[bool, asyncio.Future[None]]] = deque()

    @property
    def busy(self) -> bool:
        return self._writer or self._readers > 0 or bool(self._waiters)

    @asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        await self._acquire(False)
        try:
            yield
        finally:
            self._release(False)

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        await self._acquire(True)
        try:
            yield
        finally:
            self._release(True)

    def _free_for(self, exclusive: bool) -> bool:
        return not self._writer and (self._readers == 0 or not exclusive)

    async def _acquire(self, exclusive: bool) -> None:
        if not self._waiters and self._free_for(exclusive):
            self._take(exclusive)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (exclusive, fut)
        self._waiters.append(entry)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self._release(exclusive)  # granted just as we were cancelled: hand it on
            else:
                with suppress(ValueError):
                    self._waiters.remove(entry)
                self._wake()
            raise

    def _take(self, exclusive: bool) -> None:
        if exclusive:
            self._writer = True
        else:
            self._readers += 1

    def _release(self, exclusive: bool) -> None:
        if exclusive:
            self._writer = False
        else:
            self._readers -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            exclusive, fut = self._waiters[0]
            if fut.done():
                self._waiters.popleft()
                continue
            if not self._free_for(exclusive):
                return
            self._waiters.popleft()
            self._take(exclusive)
            fut.set_result(None)
