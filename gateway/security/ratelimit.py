"""In-memory token buckets: per API key, per send URL, per client IP on public routes, and a
per-IP bucket of failed credential lookups that blocks an address for a while once it is empty.

Each process keeps its own buckets (nothing is written to the database per request). Several
wagate processes behind one address would each allow the full rate: a multi-node deployment
needs shared state (e.g. Redis) for these, see docs/security.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MAX_BUCKETS = 100_000  # beyond this, buckets that have refilled completely are dropped


@dataclass(frozen=True, slots=True)
class RateInfo:
    """What the X-RateLimit-* headers say about the bucket a request was charged to."""

    limit: int
    remaining: int
    reset: int  # seconds until the bucket is full again
    retry_after: int  # seconds until the next request is allowed (0: allowed now)

    @property
    def allowed(self) -> bool:
        return self.retry_after == 0

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(b"x-ratelimit-limit", str(self.limit).encode()),
                (b"x-ratelimit-remaining", str(self.remaining).encode()),
                (b"x-ratelimit-reset", str(self.reset).encode())]


class Buckets:
    """Token buckets holding `capacity` tokens, refilled at `capacity` per `period` seconds."""

    def __init__(self, max_buckets: int = MAX_BUCKETS) -> None:
        self._buckets: dict[object, list[float]] = {}  # key -> [tokens, updated, capacity, period]
        self._max = max_buckets

    def take(self, key: object, capacity: int, period: float, now: float) -> RateInfo:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max:
                self._prune(now)
            bucket = self._buckets[key] = [float(capacity), now, float(capacity), period]
        rate = capacity / period
        tokens = bucket[0]
        if bucket[2] != capacity or bucket[3] != period:  # the operator changed the limit
            tokens = max(0.0, tokens + capacity - bucket[2])
        tokens = min(float(capacity), tokens + (now - bucket[1]) * rate)
        retry = 0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            retry = max(1, math.ceil((1.0 - tokens) / rate))
        bucket[0], bucket[1], bucket[2], bucket[3] = tokens, now, float(capacity), period
        reset = math.ceil((capacity - tokens) / rate)
        return RateInfo(capacity, int(tokens), reset, retry)

    def _prune(self, now: float) -> None:
        full = [k for k, (tokens, updated, capacity, period) in self._buckets.items()
                if tokens + (now - updated) * capacity / period >= capacity]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self._max:  # all busy: forget the lot rather than grow
            self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)


class FailureGuard:
    """Failed credential lookups per client address: `per_minute` of them, then the address is
    blocked for `block_seconds` (every request of it that carries a credential gets 429)."""

    def __init__(self) -> None:
        self._buckets = Buckets()
        self._blocked: dict[str, float] = {}

    def blocked_for(self, ip: str, now: float) -> int:
        """Seconds the address stays blocked (0: not blocked)."""
        if not self._blocked:
            return 0
        until = self._blocked.get(ip)
        if until is None:
            return 0
        if until <= now:
            del self._blocked[ip]
            return 0
        return max(1, math.ceil(until - now))

    def failed(self, ip: str, now: float, per_minute: int, block_seconds: float) -> None:
        if per_minute <= 0:
            return
        if not self._buckets.take(ip, per_minute, 60.0, now).allowed:
            if len(self._blocked) >= MAX_BUCKETS:
                self._blocked = {k: v for k, v in self._blocked.items() if v > now}
            self._blocked[ip] = now + max(block_seconds, 1.0)
