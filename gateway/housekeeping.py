"""Housekeeping: the store forgets what its retention settings say it may.

Without it a gateway's database only grows: every message leaves five status rows, every
webhook a delivery and its attempts. The purge runs in small batches through the one writer, so
it never holds back a send for long, and again every hour (a first pass a minute after start).
"""

from __future__ import annotations

import logging
import time
from collections import Counter

import anyio
import anyio.lowlevel

from gateway.config import Config
from gateway.store import Store
from gateway.store.base import Retention

log = logging.getLogger("wagate.housekeeping")

FIRST_RUN = 60.0
INTERVAL = 3600.0
BATCH = 2000  # rows of each kind looked at per transaction
DAY = 86400.0


def retention(config: Config, now: float) -> Retention:
    storage, delivery = config.storage, config.delivery

    def before(days: float) -> float | None:
        return now - days * DAY if days > 0 else None

    return Retention(
        messages_before=before(storage.messages_days),
        inbound_before=before(storage.inbound_days),
        webhook_log_before=before(storage.webhook_log_days),
        idempotency_before=now - delivery.idempotency_ttl,
        recipient_checks_before=now - delivery.recipient_check_ttl)


async def purge(store: Store, config: Config, now: float | None = None) -> dict[str, int]:
    """One full pass; returns the rows deleted per kind."""
    cutoffs = retention(config, time.time() if now is None else now)
    total: Counter[str] = Counter()
    after: dict[str, int] = {}
    while True:
        total.update(await store.purge(cutoffs, BATCH, after))
        if all(position < 0 for position in after.values()):
            break
        await anyio.lowlevel.checkpoint()  # let queued sends take the writer between batches
    removed = {kind: n for kind, n in total.items() if n}
    if removed:
        log.info("housekeeping removed %s", ", ".join(f"{n} {k}" for k, n in removed.items()))
    return removed


async def run(store: Store, config: Config) -> None:
    await anyio.sleep(FIRST_RUN)
    while True:
        try:
            await purge(store, config)
        except Exception:
            log.exception("housekeeping failed; trying again in an hour")
        await anyio.sleep(INTERVAL)
