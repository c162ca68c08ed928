"""The last answer of an expensive check, reused for a moment.

`/readyz` (a durable write) and `/metrics` (counts over the messages table) answer anyone, as
probes and scrapers expect; reusing an answer for a second means a flood of them costs one
check a second, not one per request, while a scraper still sees fresh numbers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Recent(Generic[T]):
    def __init__(self, ttl: float = 1.0) -> None:
        self.ttl = ttl
        self._value: T | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, compute: Callable[[], Awaitable[T]]) -> T:
        async with self._lock:  # concurrent callers share one computation
            if self._value is None or time.monotonic() - self._at >= self.ttl:
                self._value = await compute()
                self._at = time.monotonic()
            return self._value
