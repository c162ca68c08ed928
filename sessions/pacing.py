"""Anti-ban pacing for one device: a token bucket with jitter plus a per-recipient cooldown.

WhatsApp publishes no limits; bans follow bursts to many people or identical bulk text
(neonize-notes §9: ≤20-30 msgs/min is the community's advice). Pacing delays, never drops.
"""

from __future__ import annotations

import asyncio
import random
import time

from gateway.config import DeliveryConfig


class Pacer:
    def __init__(self, settings: DeliveryConfig) -> None:
        self.rate = settings.rate_per_minute / 60.0
        self.burst = float(settings.burst)
        self.jitter = settings.jitter
        self.cooldown = settings.recipient_cooldown
        self._tokens = self.burst
        self._stamp = time.monotonic()
        self._last_to: dict[str, float] = {}

    def delay_for(self, recipient: str) -> float:
        """Seconds to wait before sending to `recipient` (0 when it may go now)."""
        now = time.monotonic()
        wait = 0.0
        if self.rate > 0:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            if self._tokens < 1:
                wait = (1 - self._tokens) / self.rate
                wait *= 1 + random.uniform(-self.jitter, self.jitter)
        if self.cooldown:
            last = self._last_to.get(recipient)
            if last is not None:
                wait = max(wait, last + self.cooldown - now)
        return max(0.0, wait)

    def taken(self, recipient: str) -> None:
        """Record a send that went out now."""
        if self.rate > 0:
            self._tokens -= 1
        if self.cooldown:
            now = time.monotonic()
            self._last_to[recipient] = now
            if len(self._last_to) > 10_000:  # forget recipients whose cooldown has passed
                self._last_to = {k: v for k, v in self._last_to.items()
                                 if v + self.cooldown > now}

    async def wait(self, recipient: str) -> None:
        delay = self.delay_for(recipient)
        if delay > 0:
            await asyncio.sleep(delay)
