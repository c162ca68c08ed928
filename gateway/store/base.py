"""Records and the `Store` protocol the HTTP layer and the session manager talk to.

Every method that reads or changes a partner's data takes the partner id, so tenant scoping is in
the signature and cannot be forgotten in a handler. Methods that return only after a commit say so:
what the API acknowledges is on disk before the response.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from gateway.errors import WagateError


@dataclass(frozen=True)
class Partner:
    id: int
    name: str
    email: str
    domain: str
    status: str  # active | pending (awaiting the operator's approval) | suspended
    created_at: float
    status_reason: str | None = None
    api_rate_per_minute: int | None = None  # operator overrides; None: the configured default
    send_rate_per_minute: int | None = None


@dataclass(frozen=True)
class User:
    id: int
    partner_id: int
    label: str
    email: str
    token_nonce: str
    created_at: float


@dataclass(frozen=True)
class Device:
    id: int
    partner_id: int
    user_id: int
    session_id: str
    name: str
    token_nonce: str
    status: str
    linked: bool
    phone: str | None
    jid: str | None
    status_since: float
    last_error: str | None
    created_at: float
    prev_token_until: float | None = None


@dataclass(frozen=True)
class Message:
    id: str
    partner_id: int
    device_id: int
    recipient: str
    kind: str
    body: str
    status: str
    wa_id: str | None
    error: str | None
    created_at: float
    updated_at: float
    attempts: int = 0
    expires_at: float | None = None
    in_doubt: bool = False
    payload: str | None = None  # JSON: media, location, link_preview (see gateway/compose.py)


@dataclass(frozen=True)
class SendOutcome:
    """What one hand-off to the driver came to: `sent` (with WhatsApp's id), `retry` (back to
    the queue at `retry_at`) or `failed`; a batch of these is settled in one commit."""

    message_id: str
    status: str
    wa_id: str | None = None
    error: str | None = None
    retry_at: float | None = None


@dataclass(frozen=True)
class MessageEvent:
    status: str
    detail: str | None
    at: float


@dataclass(frozen=True)
class Idempotency:
    """An `Idempotency-Key` (or `ref=`) seen before: which message it made, for which payload."""

    scope: str
    key: str
    fingerprint: str


class IdempotentReplay(WagateError):
    """The key was used before; `message_id` is what it made; `same` if the payload matched."""

    def __init__(self, message_id: str | None, same: bool) -> None:
        super().__init__(message_id)
        self.message_id = message_id
        self.same = same


@dataclass(frozen=True)
class Inbound:
    id: int
    device_id: int
    wa_id: str
    sender: str
    chat: str
    kind: str
    body: str
    is_group: bool
    received_at: float


@dataclass(frozen=True)
class WebhookEndpoint:
    id: int
    partner_id: int
    public_id: str
    url: str
    secret_nonce: str
    prev_secret_nonce: str | None
    prev_secret_until: float | None
    events: tuple[str, ...]  # ("*",) for every event
    device_id: int | None
    status: str  # active | disabled
    failing_since: float | None
    disabled_reason: str | None
    created_at: float


@dataclass(frozen=True)
class WebhookDelivery:
    id: int
    endpoint_id: int
    event_id: str
    event_type: str
    payload: str
    status: str  # pending | held (partner suspended) | delivered | failed
    attempts: int
    next_attempt_at: float
    created_at: float
    delivered_at: float | None


@dataclass(frozen=True)
class WebhookAttempt:
    at: float
    status_code: int | None
    latency_ms: float
    error: str | None
    response: str | None


class WebhookStore(Protocol):
    async def create_webhook(
        self, partner_id: int, public_id: str, url: str, secret_nonce: str,
        events: tuple[str, ...], device_id: int | None,
    ) -> WebhookEndpoint: ...
    async def list_webhooks(self, partner_id: int) -> list[WebhookEndpoint]: ...
    async def webhook_by_public_id(self, partner_id: int,
                                   public_id: str) -> WebhookEndpoint | None: ...
    async def webhook_by_id(self, endpoint_id: int) -> WebhookEndpoint | None: ...
    async def delete_webhook(self, partner_id: int, endpoint_id: int) -> None: ...
    async def rotate_webhook_secret(self, partner_id: int, endpoint_id: int, nonce: str,
                                    prev_until: float) -> None: ...
    async def set_webhook_status(self, endpoint_id: int, status: str,
                                 reason: str | None) -> None: ...
    async def fanout(self, partner_id: int, device_id: int | None, event_type: str,
                     data: dict[str, Any], *, endpoint_id: int | None = None) -> str:
        """Queue an event for every matching active endpoint; returns the event id."""
    async def pump_message_events(self, limit: int) -> int:
        """Turn new message status events into webhook deliveries (transactionally)."""
    async def claim_deliveries(self, now: float, limit: int, lease: float, *,
                               per_endpoint: int,
                               busy: dict[int, int]
                               ) -> list[tuple[WebhookDelivery, WebhookEndpoint | None]]:
        """Lease up to `limit` due deliveries, at most `per_endpoint` in flight per endpoint
        (counting `busy`, the deliveries this process already has in flight), each with its
        endpoint as of the claim (None if deleted)."""
    async def finish_attempt(
        self, delivery: WebhookDelivery, attempt: WebhookAttempt, *, outcome: str,
        retry_at: float | None, disable_after: float,
    ) -> WebhookEndpoint | None:
        """Log an attempt, settle or reschedule the delivery, track the endpoint's failures;
        returns the endpoint if this attempt disabled it."""
    async def list_deliveries(self, endpoint_id: int, limit: int) -> list[WebhookDelivery]: ...
    async def delivery_attempts(self, delivery_id: int) -> list[WebhookAttempt]: ...
    async def redeliver(self, endpoint_id: int, delivery_id: int) -> bool: ...
    async def webhook_backlog(self) -> int: ...


@dataclass(frozen=True)
class LinkToken:
    """A device link page's token (only its hash is stored)."""

    id: int
    partner_id: int
    device_id: int
    created_at: float
    expires_at: float
    revoked_at: float | None


class LinkStore(Protocol):
    async def create_link(self, partner_id: int, device_id: int, token_hash: str,
                          expires_at: float) -> LinkToken: ...
    async def link_by_token_hash(self, token_hash: str, now: float) -> LinkToken | None:
        """A live link: not expired, not revoked, and its device not deleted."""
    async def revoke_links(self, partner_id: int, device_id: int) -> int:
        """Revoke every live link of a device; returns how many."""


@dataclass(frozen=True)
class ApiKey:
    """A partner API key (only its hash is stored). `scopes` is ("*",) for every scope."""

    id: int
    public_id: str
    partner_id: int
    name: str
    hint: str | None
    scopes: tuple[str, ...]
    is_primary: bool
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None = None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: float
    partner_id: int | None
    actor: str  # key | operator | console | public
    actor_id: str | None
    actor_name: str | None
    action: str
    target: str | None
    ip: str | None
    detail: dict[str, Any]


class SecurityStore(Protocol):
    async def api_key_by_hash(self, key_hash: str) -> tuple[ApiKey, Partner] | None:
        """A key that is not revoked (expiry is the caller's to check) with its partner."""
    async def create_api_key(
        self, partner_id: int, public_id: str, name: str, key_hash: str, hint: str,
        scopes: tuple[str, ...], expires_at: float | None, max_keys: int,
    ) -> ApiKey | None:
        """None when the partner already has `max_keys` live keys."""
    async def list_api_keys(self, partner_id: int) -> list[ApiKey]:
        """Keys not revoked (expired ones included), oldest first."""
    async def revoke_api_key(self, partner_id: int, public_id: str) -> ApiKey | None: ...
    async def touch_api_key(self, key_id: int, at: float) -> None: ...
    async def set_key_hint(self, key_hash: str, hint: str) -> None: ...
    async def set_partner_status(self, partner_id: int, status: str,
                                 reason: str | None) -> None: ...
    async def set_partner_limits(self, partner_id: int, api_rate_per_minute: int | None,
                                 send_rate_per_minute: int | None) -> None: ...
    async def partner_ids_with_status(self, status: str) -> list[int]: ...
    async def add_audit(
        self, partner_id: int | None, actor: str, actor_id: str | None, actor_name: str | None,
        action: str, target: str | None, ip: str | None, detail: dict[str, Any],
    ) -> None: ...
    async def list_audit(self, partner_id: int | None, limit: int,
                         before: int | None = None) -> list[AuditEntry]:
        """Newest first; `partner_id` None: every entry."""


@dataclass(frozen=True)
class Retention:
    """Epoch cut-offs: rows older than these go (None keeps that kind forever). Messages still
    queued or sending and webhook deliveries still pending are never removed."""

    messages_before: float | None
    inbound_before: float | None
    webhook_log_before: float | None
    idempotency_before: float
    recipient_checks_before: float


class RetentionStore(Protocol):
    async def purge(self, retention: Retention, limit: int,
                    after: dict[str, int]) -> dict[str, int]:
        """Delete the next expired rows of each kind (at most `limit` looked at per kind, with
        their dependent rows) in one short transaction; returns the rows deleted per kind.
        `after` is the pass's progress (start with {}): call again until every value in it is
        -1. Small batches keep the single writer free for sends."""


class Store(WebhookStore, LinkStore, SecurityStore, RetentionStore, Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def schema_version(self) -> int: ...
    async def get_meta(self, key: str) -> str | None: ...
    async def set_meta(self, key: str, value: str) -> None: ...

    # partners
    async def create_partner(
        self, name: str, email: str, domain: str, key_hash: str, status: str = "active"
    ) -> Partner: ...
    async def partner_by_key_hash(self, key_hash: str) -> Partner | None: ...
    async def partner_by_id(self, partner_id: int) -> Partner | None: ...
    async def list_partners(self) -> list[Partner]: ...
    async def set_partner_key(self, partner_id: int, key_hash: str) -> None: ...
    async def partner_counts(self, partner_id: int) -> dict[str, Any]: ...
    async def message_counts(self) -> dict[str, int]:
        """Messages by status over every partner (for metrics)."""

    # users
    async def create_user(
        self, partner_id: int, label: str, email: str, token_nonce: str, token_hash: str
    ) -> User: ...
    async def list_users(self, partner_id: int) -> list[User]: ...
    async def user_by_token_hash(self, partner_id: int, token_hash: str) -> User | None: ...

    # devices
    async def create_device(
        self, partner_id: int, user_id: int, session_id: str, name: str, token_nonce: str,
        token_hash: str,
    ) -> Device: ...
    async def device_by_session(self, partner_id: int, session_id: str) -> Device | None: ...
    async def device_by_id(self, device_id: int) -> Device | None: ...
    async def device_by_token_hash(self, token_hash: str, now: float) -> Device | None: ...
    async def list_devices(self, partner_id: int, user_id: int | None = None) -> list[Device]: ...
    async def all_devices(self) -> list[Device]: ...
    async def set_device_state(
        self, device_id: int, status: str, *, linked: bool | None = None,
        phone: str | None = None, jid: str | None = None, last_error: str | None = None,
        clear_identity: bool = False,
    ) -> None: ...
    async def rotate_device_token(
        self, partner_id: int, device_id: int, token_nonce: str, token_hash: str,
        prev_valid_until: float,
    ) -> None: ...
    async def delete_device(self, partner_id: int, device_id: int) -> None: ...

    # messages
    async def apply_receipt(self, device_id: int, wa_ids: list[str], status: str) -> int: ...
    async def message_by_id(self, partner_id: int, message_id: str) -> Message | None: ...

    # outbox
    async def enqueue_message(
        self, message_id: str, partner_id: int, device_id: int, recipient: str, kind: str,
        body: str, expires_at: float | None, idempotency: Idempotency | None = None,
        idempotency_ttl: float = 86400.0, payload: str | None = None,
        media_sha256: str | None = None,
    ) -> Message:
        """Commit a queued message (raises `IdempotentReplay` for a key seen within the TTL)."""
    async def media_in_use(self, digests: list[str]) -> set[str]:
        """Those of these media blobs that a queued or sending message still needs."""
    async def recipient_checks(self, device_id: int, phones: list[str],
                               since: float) -> dict[str, bool]:
        """Cached on-WhatsApp answers for this device checked after `since`."""
    async def save_recipient_checks(self, device_id: int, answers: dict[str, bool]) -> None: ...
    async def next_queued(self, device_id: int, now: float, limit: int) -> list[Message]: ...
    async def mark_sending(self, message_id: str) -> bool:
        """queued -> sending; False if the message is no longer queued (expired, failed)."""
    async def claim_queued(self, device_id: int, now: float, limit: int) -> list[Message]:
        """Up to `limit` due messages, oldest first, moved queued -> sending in one commit."""
    async def settle_sends(self, outcomes: list[SendOutcome]) -> None:
        """Record a batch of hand-offs (sent / retry / failed) in one commit."""
    async def mark_sent(self, message_id: str, wa_id: str) -> None: ...
    async def retry_later(self, message_id: str, at: float, error: str) -> None: ...
    async def mark_failed(self, message_id: str, error: str) -> None: ...
    async def requeue_in_doubt(self) -> int:
        """After a crash: messages left `sending` go back to the queue, flagged in doubt."""
    async def expire_due(self, now: float) -> list[Message]: ...
    async def fail_queued(self, device_id: int, reason: str) -> list[Message]: ...
    async def message_events(self, message_id: str) -> list[MessageEvent]: ...
    async def list_messages(
        self, partner_id: int, device_id: int, *, status: str | None, recipient: str | None,
        since: float | None, until: float | None, before: str | None, limit: int,
    ) -> list[Message]: ...
    async def add_inbound(
        self, device_id: int, wa_id: str, sender: str, chat: str, kind: str, body: str,
        is_group: bool,
    ) -> None: ...
    async def list_inbound(self, partner_id: int, device_id: int, limit: int) -> list[Inbound]: ...
