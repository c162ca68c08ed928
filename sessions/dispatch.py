"""Drain one device's outbox into its WhatsApp session: FIFO, paced, retried, durable.

Every message is committed as `queued` before the client hears 2xx. The dispatcher marks it
`sending` (committed) before handing it to the driver and `sent` with WhatsApp's id after; a
crash in between leaves it `sending`, and the next start puts it back in the queue flagged
`in_doubt` and sends it again — with the same id where the driver honours ids (the simulated one
does, so WhatsApp would drop the duplicate), otherwise at-least-once (see docs/delivery.md).

Two ways through the queue:
- one at a time (pacing on, or a driver that cannot take our ids): wait for the pacer, show
  "typing..." if configured, commit `sending`, send, commit the outcome — so at most one
  message is ever in doubt;
- in batches (pacing off and a driver that honours ids, e.g. load tests on the simulated one):
  claim up to `BATCH` messages as `sending` in one commit, hand them to the driver in FIFO order
  (concurrently when the driver keeps the order of concurrent sends, `ordered_pipelining`), and
  commit every outcome in one more commit. A crash can leave a whole batch in doubt; each is
  resent with its own id, which the driver deduplicates.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import anyio

from gateway.compose import outgoing
from gateway.config import DeliveryConfig
from gateway.errors import DriverError, NotConnected
from gateway.media import MediaStore
from gateway.store import Message, Store
from gateway.store.base import SendOutcome
from sessions.backoff import Backoff
from sessions.outcomes import Outcomes
from sessions.pacing import Pacer
from sessions.state import DeviceStatus

if TYPE_CHECKING:
    from sessions.supervisor import DeviceSupervisor

log = logging.getLogger("wagate.dispatch")

BATCH = 64  # read ahead of the one-at-a-time path
CLAIM = 256  # messages claimed per commit on the batched path
IDLE_POLL = 5.0  # re-read the queue this often even without a wake-up (retries falling due)
NOT_CONNECTED_PAUSE = 1.0  # the driver said "not connected" before the supervisor knew: no spin


class Dispatcher:
    def __init__(self, sup: DeviceSupervisor, store: Store, settings: DeliveryConfig,
                 outcomes: Outcomes, media: MediaStore) -> None:
        self.sup = sup
        self.store = store
        self.settings = settings
        self.outcomes = outcomes
        self.media = media
        self.pacer = Pacer(settings)
        self._wake = asyncio.Event()
        self._retry_at: float | None = None
        self._stalled = False  # earliest resend this dispatcher scheduled
        self.held = False  # the partner is suspended: leave the queue alone (manager.hold)
        self._closing = False
        self._quiet = asyncio.Event()  # set while no message is between `sending` and settled
        self._quiet.set()

    def wake(self) -> None:
        self._wake.set()

    async def close(self) -> None:
        """Take no more messages and wait for the hand-off under way to settle, so a graceful
        stop leaves nothing in doubt: cancelling a send inside the driver would make it a
        resend at the next start, a duplicate where the driver cannot keep our id. The caller
        bounds the wait."""
        self._closing = True
        self._wake.set()
        await self._quiet.wait()

    async def run(self) -> None:
        while True:
            if self._closing:
                await anyio.sleep_forever()  # parked until the supervisor's task group ends
            if self.held:
                self._wake.clear()
                await self._wake.wait()  # hold() wakes it when the partner is resumed
                continue
            if self.sup.status is not DeviceStatus.CONNECTED:
                await self.sup.changed()
                continue
            self._wake.clear()
            if self._batched():
                self._quiet.clear()
                try:
                    claimed = await self.store.claim_queued(self.sup.device_id, time.time(),
                                                            CLAIM)
                    if claimed:
                        await self._deliver_batch(claimed)
                finally:
                    self._quiet.set()
                if not claimed:
                    await self._idle()
                continue
            batch = await self.store.next_queued(self.sup.device_id, time.time(), BATCH)
            if not batch:
                await self._idle()
                continue
            waiting: set[str] = set()  # recipients whose older message waits for a retry
            for message in batch:
                if self._closing:
                    break
                if message.recipient in waiting:
                    continue  # FIFO per recipient: not before the older one goes out
                status = await self._deliver(message)
                if status == "retry":
                    waiting.add(message.recipient)
                if status is None or self._stalled:
                    break

    def _batched(self) -> bool:
        """Batches only when nothing paces single messages and a resend cannot duplicate."""
        return (self.settings.rate_per_minute == 0 and self.settings.recipient_cooldown == 0
                and self.settings.typing_seconds == 0 and self.sup.driver.honours_message_ids)

    async def _deliver_batch(self, claimed: list[Message]) -> None:
        if self.sup.driver.ordered_pipelining:
            # The driver records concurrent sends in the order they were started, which is
            # the order of `claimed` (tasks start in creation order).
            outcomes = list(await asyncio.gather(*(self._hand_off(m) for m in claimed)))
        else:
            outcomes = [await self._hand_off(m) for m in claimed]
        await self.store.settle_sends(outcomes)
        for outcome in outcomes:
            if outcome.status != "retry":
                self.outcomes.resolve(outcome.message_id, outcome.status)

    async def _hand_off(self, message: Message, honour: bool = True) -> SendOutcome:
        """One claimed (`sending`) message to the driver; what came of it, not yet stored.
        `message.attempts` already counts this attempt."""
        self._stalled = False
        try:
            wa_id = await self.sup.send(
                outgoing(message.kind, message.recipient, message.body, message.payload,
                         self.media),
                message.id if honour else None)
        except NotConnected as exc:
            self._stalled = True  # the device cannot take more now
            at = time.time() + NOT_CONNECTED_PAUSE
            if self._retry_at is None or not time.time() < self._retry_at < at:
                self._retry_at = at
            return SendOutcome(message.id, "retry", error=exc.reason, retry_at=at)
        except Exception as exc:  # a driver bug, too, must not leave the batch `sending`
            if isinstance(exc, DriverError):
                reason = exc.reason
            else:
                log.exception("device %s: send failed unexpectedly", self.sup.key)
                reason = f"driver error: {exc!r}"
            if message.attempts >= self.settings.max_attempts:  # counts this attempt already
                return SendOutcome(message.id, "failed", error=reason)
            return SendOutcome(message.id, "retry", error=reason,
                               retry_at=self._retry_time(message.attempts))
        return SendOutcome(message.id, "sent", wa_id=wa_id)

    def _retry_time(self, attempts: int) -> float:
        backoff = Backoff(self.settings.retry_initial, self.settings.retry_max, 0.2,
                          attempts=attempts - 1)
        at = time.time() + backoff.next_delay()
        if self._retry_at is None or not time.time() < self._retry_at < at:
            self._retry_at = at
        return at

    async def _idle(self) -> None:
        timeout = IDLE_POLL
        if self._retry_at is not None:
            timeout = min(timeout, self._retry_at - time.time())
            if timeout <= 0:
                self._retry_at = None  # due now: the next read of the queue picks it up
                return
        wake = asyncio.ensure_future(self._wake.wait())
        change = asyncio.ensure_future(self.sup.changed())
        try:
            await asyncio.wait({wake, change}, timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            wake.cancel()
            change.cancel()

    async def _deliver(self, message: Message) -> str | None:
        """Send one message; what came of it (`sent`, `retry`, `failed`, or `gone` when it
        expired or failed meanwhile), None when the device cannot take it now."""
        if self.sup.status is not DeviceStatus.CONNECTED or self.held:
            return None
        await self.pacer.wait(message.recipient)
        if self.settings.typing_seconds > 0:
            # "typing..." before the message, as a person would; the message itself ends it.
            await self.sup.typing(message.recipient, True)
            await asyncio.sleep(self.settings.typing_seconds)
        if self._closing:
            return None
        self._quiet.clear()
        try:
            if not await self.store.mark_sending(message.id):
                return "gone"
            # One outcome routine for both paths: any exception (a driver bug too) settles the
            # message instead of leaving it `sending` until the next restart.
            outcome = await self._hand_off(replace(message, attempts=message.attempts + 1),
                                           self.sup.driver.honours_message_ids)
            await self.store.settle_sends([outcome])
        finally:
            self._quiet.set()
        if outcome.status == "sent":
            self.pacer.taken(message.recipient)
        if outcome.status != "retry":
            self.outcomes.resolve(message.id, outcome.status)
        return outcome.status
