"""The webhook sender: fans new events out, then delivers due deliveries with leases.

Claims are leases (`claimed_until`): a crash or shutdown mid-delivery leaves the row to be
claimed again when the lease runs out, so delivery is at-least-once and receivers dedupe on
`webhook-id`. Concurrency is bounded overall and per endpoint, and each attempt has a timeout,
so a slow or dead endpoint holds only its own slots and never the send path.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections import Counter
from typing import Any

import anyio
import httpx

from gateway import __version__
from gateway.config import WebhooksConfig
from gateway.errors import ApiError
from gateway.metrics import Metrics
from gateway.ssrf import vet
from gateway.store import Store
from gateway.store.base import WebhookAttempt, WebhookDelivery
from gateway.tokens import TokenVault
from gateway.webhooks.signing import endpoint_secret, signature_header

log = logging.getLogger("wagate.webhooks")

POLL = 0.25  # seconds between looks for new message events when nothing woke the sender
SNIPPET = 1024  # bytes of each response kept in the delivery log
BATCH = 200


class WebhookSender:
    def __init__(self, store: Store, vault: TokenVault, settings: WebhooksConfig,
                 transport: httpx.AsyncBaseTransport | None = None,
                 metrics: Metrics | None = None) -> None:
        self.store = store
        self.vault = vault
        self.settings = settings
        self.schedule = settings.schedule()
        self._client = httpx.AsyncClient(follow_redirects=False, transport=transport,
                                         timeout=settings.timeout,
                                         headers={"user-agent": f"wagate-webhooks/{__version__}"})
        self._wake = asyncio.Event()
        self._slots = anyio.CapacityLimiter(settings.concurrency)
        self._busy: Counter[int] = Counter()
        self.metrics = metrics

    def wake(self) -> None:
        self._wake.set()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            while True:
                claimed = 0
                try:
                    await self.store.pump_message_events(BATCH)
                    free = int(self._slots.available_tokens)
                    if free > 0:
                        lease = self.settings.timeout + 30
                        batch = await self.store.claim_deliveries(time.time(), free, lease)
                        chosen = self._fair(batch)
                        if len(chosen) < len(batch):
                            held = {d.id for d in chosen}
                            await self.store.release_deliveries(
                                [d.id for d in batch if d.id not in held])
                        for delivery in chosen:
                            claimed += 1
                            await self._slots.acquire_on_behalf_of(delivery.id)
                            self._busy[delivery.endpoint_id] += 1
                            tg.start_soon(self._deliver, delivery)
                except Exception:
                    log.exception("webhook sender: store error; retrying")
                    await anyio.sleep(1)
                if not claimed:
                    self._wake.clear()
                    with anyio.move_on_after(POLL):
                        await self._wake.wait()

    def _fair(self, batch: list[WebhookDelivery]) -> list[WebhookDelivery]:
        """Keep each endpoint within its share; the rest wait for their next claim."""
        taken: Counter[int] = Counter()
        chosen = []
        for d in batch:
            if self._busy[d.endpoint_id] + taken[d.endpoint_id] < self.settings.per_endpoint:
                taken[d.endpoint_id] += 1
                chosen.append(d)
        return chosen

    async def _deliver(self, delivery: WebhookDelivery) -> None:
        try:
            await self._attempt(delivery)
        except Exception:
            log.exception("webhook delivery %s failed unexpectedly", delivery.id)
        finally:
            self._busy[delivery.endpoint_id] -= 1
            self._slots.release_on_behalf_of(delivery.id)

    async def _attempt(self, delivery: WebhookDelivery) -> None:
        endpoint = await self.store.webhook_by_id(delivery.endpoint_id)
        now = time.time()
        if endpoint is None:
            attempt = WebhookAttempt(now, None, 0.0, "endpoint deleted", None)
            await self.store.finish_attempt(delivery, attempt, outcome="failed", retry_at=None,
                                            disable_after=self.settings.disable_after)
            return
        secrets = [endpoint_secret(self.vault, endpoint.secret_nonce)]
        if endpoint.prev_secret_nonce and (endpoint.prev_secret_until or 0) > now:
            secrets.append(endpoint_secret(self.vault, endpoint.prev_secret_nonce))
        body = delivery.payload.encode()
        stamp = int(now)
        headers = {"content-type": "application/json", "webhook-id": delivery.event_id,
                   "webhook-timestamp": str(stamp),
                   "webhook-signature": signature_header(secrets, delivery.event_id, stamp, body)}
        status: int | None = None
        snippet: str | None = None
        error: str | None = None
        retry_after: float | None = None
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.settings.timeout):  # whole attempt
                target = await vet(endpoint.url, allow_private=self.settings.allow_private_targets,
                                   allow_http=self.settings.allow_http)
                headers["host"] = target.host_header
                extensions: dict[str, Any] = {"sni_hostname": target.sni}
                async with self._client.stream("POST", target.url, content=body, headers=headers,
                                               extensions=extensions) as response:
                    status = response.status_code
                    retry_after = _retry_after(response.headers.get("retry-after"))
                    snippet = await _read_snippet(response)
        except ApiError as exc:
            error = exc.message
        except (httpx.TimeoutException, TimeoutError):
            error = f"timed out after {self.settings.timeout:g}s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        latency = (time.monotonic() - started) * 1000
        attempt = WebhookAttempt(now, status, latency, error, snippet)
        if status is not None and 200 <= status < 300:
            outcome, retry_at = "delivered", None
        elif status == 410:
            outcome, retry_at = "gone", None
        else:
            outcome, retry_at = "failed", self._next_try(delivery.attempts, retry_after)
        if self.metrics is not None:
            self.metrics.webhook_attempts.labels(
                "delivered" if outcome == "delivered" else "failed").inc()
        disabled = await self.store.finish_attempt(
            delivery, attempt, outcome=outcome, retry_at=retry_at,
            disable_after=self.settings.disable_after)
        if disabled is not None:
            log.warning("webhook %s disabled: %s", disabled.public_id, disabled.disabled_reason)
            await self.store.fanout(disabled.partner_id, None, "webhook.disabled",
                                    {"webhook_id": disabled.public_id, "url": disabled.url,
                                     "reason": disabled.disabled_reason})

    def _next_try(self, attempts: int, retry_after: float | None) -> float | None:
        """When to try again after `attempts` failed tries; None when the schedule is spent."""
        if attempts > len(self.schedule):
            return None
        delay = self.schedule[attempts - 1] * random.uniform(0.9, 1.1)
        if retry_after is not None:
            delay = max(delay, min(retry_after, 86400.0))
        return time.time() + delay


async def _read_snippet(response: httpx.Response) -> str:
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= SNIPPET:
            break
    return data[:SNIPPET].decode("utf-8", errors="replace")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
