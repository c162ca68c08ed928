"""What the HTTP handlers share: config, store, token vault and the session manager."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from gateway.config import Config
from gateway.media import MediaStore
from gateway.metrics import Metrics
from gateway.recent import Recent
from gateway.security.guard import Security
from gateway.store import Device, Store, User
from gateway.tokens import DEVICE_TOKEN, USER_TOKEN, TokenVault
from gateway.webhooks.sender import WebhookSender
from sessions.drivers.base import Driver
from sessions.manager import SessionManager


@dataclass
class Services:
    config: Config
    store: Store
    vault: TokenVault
    driver: Driver
    manager: SessionManager
    webhooks: WebhookSender
    metrics: Metrics
    media: MediaStore
    http: httpx.AsyncClient
    """For fetching media_url (the webhook sender keeps its own client and limits)."""
    inflight: set[tuple[str, str]] = field(default_factory=set)
    """Idempotency keys whose first request is still being answered."""
    security: Security = field(default_factory=Security)
    """Rate-limit buckets, the failed-lookup guard, cached partner status (per process)."""
    readiness: Recent[str] = field(default_factory=Recent)
    gauges: Recent[tuple[dict[str, int], int]] = field(default_factory=Recent)
    """The last /readyz check and /metrics gauges, reused for a second (gateway/recent.py)."""

    def device_token(self, device: Device) -> str:
        return self.vault.derive(DEVICE_TOKEN, device.token_nonce)

    def user_token(self, user: User) -> str:
        return self.vault.derive(USER_TOKEN, user.token_nonce)

    def send_url(self, device: Device) -> str:
        return f"{self.config.public_url}/wa/{self.device_token(device)}/send"

    def qr_url(self, device: Device) -> str:
        return f"{self.config.public_url}/partner/devices/{device.session_id}/qr"
