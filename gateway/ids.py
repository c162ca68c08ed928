"""Random public ids (message ids, event ids): unique and unpredictable, but not credentials."""

from __future__ import annotations

import os


class RandomHex:
    """Random hex strings of `nbytes` bytes, drawn from one `os.urandom` call per `batch` of
    them: one getrandom() syscall per send was ~4 % of the send path's CPU. Safe to call from
    any thread (`list.pop` is atomic); a forked child starts with an empty pool, so parent and
    child never hand out the same string."""

    def __init__(self, nbytes: int, upper: bool = False, batch: int = 256) -> None:
        self.nbytes = nbytes
        self.upper = upper
        self.batch = batch
        self._pool: list[str] = []
        os.register_at_fork(after_in_child=self._pool.clear)

    def __call__(self) -> str:
        try:
            return self._pool.pop()
        except IndexError:
            raw = os.urandom(self.nbytes * self.batch).hex()
            if self.upper:
                raw = raw.upper()
            w = self.nbytes * 2
            self._pool.extend(raw[i:i + w] for i in range(w, len(raw), w))
            return raw[:w]
