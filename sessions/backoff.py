"""Exponential backoff with jitter and a cap."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    initial: float
    maximum: float
    jitter: float
    attempts: int = 0

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * 2.0 ** min(self.attempts, 62))
        self.attempts += 1
        spread = base * self.jitter
        return max(0.0, min(self.maximum, base + random.uniform(-spread, spread)))

    def reset(self) -> None:
        self.attempts = 0
