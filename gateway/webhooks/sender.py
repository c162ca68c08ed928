"""The webhook sender: fans new events out, then delivers due deliveries with leases.

Claims are leases (`claimed_until`): a crash or shutdown mid-delivery leaves the row to be
claimed again when the lease runs out, so delivery is at-least-once and receivers dedupe on
`webhook-id`. Concurrency is bounded overall and per endpoint, and each attempt has a timeout,
so a slow or dead endpoint holds only its own slots and never the send path.

The HTTP client is aiohttp, not httpx: a delivery is one small POST, and httpx's connection
pool costs ~10x the CPU per request under concurrency (measured in docs/performance.md,
encode/httpx#3215), which at webhook rates is most of a core. Its pool keys connections by
(pinned IP, port, TLS server name), so a vetted connection is reused only for the same name;
cookies are never kept (endpoints of different partners can share an address) and no proxy
settings from the environment apply (they would bypass the SSRF pin).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections import Counter

import aiohttp
import anyio

from gateway import __version__
from gateway.config import WebhooksConfig
from gateway.errors import ApiError
from gateway.metrics import Metrics
from gateway.ssrf import vet
from gateway.store import Store
from gateway.store.base import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from gateway.tokens import TokenVault
from gateway.webhooks.signing import endpoint_secret, signature_header

log = logging.getLogger("wagate.webhooks")

POLL = 0.25  # seconds between looks for new message events when nothing woke the sender
SNIPPET = 1024  # bytes of each response kept in the delivery log
BATCH = 200


class WebhookSender:
    def __init__(self, store: Store, vault: TokenVault, settings: WebhooksConfig,
                 metrics: Metrics | None = None) -> None:
        self.store = store
        self.vault = vault
        self.settings = settings
        self.schedule = settings.schedule()
        self._client: aiohttp.ClientSession | None = None
        self._secrets: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._pump_wanted = True
        self._next_pump = 0.0
        self._slots = anyio.CapacityLimiter(settings.concurrency)
        self._busy: Counter[int] = Counter()
        self.metrics = metrics

    def wake(self) -> None:
        """Something new may be waiting: message events to fan out, or new deliveries."""
        self._pump_wanted = True
        self._wake.set()

    def _session(self) -> aiohttp.ClientSession:
        if self._client is None:  # made on first use: aiohttp binds it to the running loop
            self._client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.settings.concurrency,
                                               use_dns_cache=False),
                cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
                headers={"user-agent": f"wagate-webhooks/{__version__}"})
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            while True:
                claimed = 0
                self._wake.clear()  # before looking: a wake during the look is not lost
                try:
                    if self._pump_wanted or time.monotonic() >= self._next_pump:
                        # New message events become deliveries: when something said so, or
                        # every POLL (a finished delivery only frees a slot).
                        self._pump_wanted = False
                        self._next_pump = time.monotonic() + POLL
                        if await self.store.pump_message_events(BATCH) == BATCH:
                            self._pump_wanted = True  # more where those came from
                    free = int(self._slots.available_tokens)
                    if free > 0:
                        lease = self.settings.timeout + 30
                        batch = await self.store.claim_deliveries(
                            time.time(), free, lease, per_endpoint=self.settings.per_endpoint,
                            busy=dict(self._busy))
                        for delivery, endpoint in batch:
                            claimed += 1
                            # A slot per attempt, not per delivery id: a redelivered row can
                            # be claimed again while its first attempt is still running.
                            slot = object()
                            await self._slots.acquire_on_behalf_of(slot)
                            self._busy[delivery.endpoint_id] += 1
                            tg.start_soon(self._deliver, delivery, endpoint, slot)
                except Exception:
                    log.exception("webhook sender: store error; retrying")
                    await anyio.sleep(1)
                if not claimed and not self._pump_wanted:
                    with anyio.move_on_after(max(0.0, self._next_pump - time.monotonic())):
                        await self._wake.wait()

    async def _deliver(self, delivery: WebhookDelivery, endpoint: WebhookEndpoint | None,
                       slot: object) -> None:
        held = True

        def release() -> None:
            nonlocal held
            if not held:
                return
            held = False
            self._busy[delivery.endpoint_id] -= 1
            if not self._busy[delivery.endpoint_id]:
                del self._busy[delivery.endpoint_id]
            self._slots.release_on_behalf_of(slot)
            self._wake.set()  # a slot is free: claim the next at once, not at the next poll

        try:
            attempt, outcome, retry_at = await self._request(delivery, endpoint)
            # The slot goes back when the HTTP attempt ends, before its outcome commits: the
            # row stays leased until then, so it cannot be claimed twice, and the endpoint's
            # next delivery need not wait for this one's commit.
            release()
            await self._settle(delivery, attempt, outcome, retry_at)
        except Exception:
            log.exception("webhook delivery %s failed unexpectedly", delivery.id)
        finally:
            release()

    async def _request(self, delivery: WebhookDelivery, endpoint: WebhookEndpoint | None
                       ) -> tuple[WebhookAttempt, str, float | None]:
        """One signed POST: the attempt for the log, its outcome and when to try again."""
        now = time.time()
        if endpoint is None:
            return WebhookAttempt(now, None, 0.0, "endpoint deleted", None), "failed", None
        secrets = [self._secret(endpoint.secret_nonce)]
        if endpoint.prev_secret_nonce and (endpoint.prev_secret_until or 0) > now:
            secrets.append(self._secret(endpoint.prev_secret_nonce))
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
                tls = target.url.startswith("https:")
                async with self._session().post(
                        target.url, data=body, headers=headers, allow_redirects=False,
                        server_hostname=target.sni if tls else None) as response:
                    status = response.status
                    retry_after = _retry_after(response.headers.get("retry-after"))
                    snippet = await _read_snippet(response)
        except ApiError as exc:
            error = exc.message
        except TimeoutError:  # aiohttp's timeouts are TimeoutError too
            error = f"timed out after {self.settings.timeout:g}s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        latency = (time.monotonic() - started) * 1000
        attempt = WebhookAttempt(now, status, latency, error, snippet)
        ok = status is not None and 200 <= status < 300
        if self.metrics is not None:
            self.metrics.webhook_attempts.labels("delivered" if ok else "failed").inc()
        if ok:
            return attempt, "delivered", None
        if status == 410:
            return attempt, "gone", None
        return attempt, "failed", self._next_try(delivery.attempts, retry_after)

    async def _settle(self, delivery: WebhookDelivery, attempt: WebhookAttempt, outcome: str,
                      retry_at: float | None) -> None:
        disabled = await self.store.finish_attempt(
            delivery, attempt, outcome=outcome, retry_at=retry_at,
            disable_after=self.settings.disable_after)
        if disabled is not None:
            log.warning("webhook %s disabled: %s", disabled.public_id, disabled.disabled_reason)
            await self.store.fanout(disabled.partner_id, None, "webhook.disabled",
                                    {"webhook_id": disabled.public_id, "url": disabled.url,
                                     "reason": disabled.disabled_reason})

    def _secret(self, nonce: str) -> str:
        """Derived once per endpoint secret, not once per attempt."""
        secret = self._secrets.get(nonce)
        if secret is None:
            if len(self._secrets) >= 4096:
                self._secrets.clear()
            secret = self._secrets[nonce] = endpoint_secret(self.vault, nonce)
        return secret

    def _next_try(self, attempts: int, retry_after: float | None) -> float | None:
        """When to try again after `attempts` failed tries; None when the schedule is spent."""
        if attempts > len(self.schedule):
            return None
        delay = self.schedule[attempts - 1] * random.uniform(0.9, 1.1)
        if retry_after is not None:
            delay = max(delay, min(retry_after, 86400.0))
        return time.time() + delay


async def _read_snippet(response: aiohttp.ClientResponse) -> str:
    """The first SNIPPET bytes; the rest is never read (the connection is then not reused)."""
    data = b""
    while len(data) < SNIPPET:
        chunk = await response.content.read(SNIPPET - len(data))
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", errors="replace")


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
