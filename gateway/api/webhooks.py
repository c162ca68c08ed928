"""Partner webhook endpoints: create (secret shown once), list, rotate, test, log, redeliver."""

from __future__ import annotations

import secrets
import time
from typing import Any

from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.auth import require_partner, services
from gateway.api.params import json_body, text_field
from gateway.api.responses import iso, success
from gateway.errors import BadRequest, NotFound
from gateway.security.audit import record
from gateway.services import Services
from gateway.ssrf import vet
from gateway.store import Partner
from gateway.store.base import WebhookDelivery, WebhookEndpoint
from gateway.tokens import new_nonce
from gateway.webhooks.signing import endpoint_secret

EVENT_TYPES = (
    "message.queued", "message.sent", "message.delivered", "message.read", "message.failed",
    "message.expired", "message.received", "device.qr", "device.paired", "device.connected",
    "device.disconnected", "device.logged_out", "device.banned", "webhook.disabled",
    "webhook.test",
)
PATTERNS = ("*", "message.*", "device.*", "webhook.*")
MAX_WEBHOOKS = 20


def webhook_view(svc: Services, endpoint: WebhookEndpoint,
                 session_ids: dict[int, str]) -> dict[str, Any]:
    return {
        "webhook_id": endpoint.public_id, "url": endpoint.url, "events": list(endpoint.events),
        "session_id": session_ids.get(endpoint.device_id) if endpoint.device_id else None,
        "status": endpoint.status, "disabled_reason": endpoint.disabled_reason,
        "failing_since": iso(endpoint.failing_since), "created_at": iso(endpoint.created_at),
        "previous_secret_valid_until": iso(endpoint.prev_secret_until)
        if endpoint.prev_secret_until and endpoint.prev_secret_until > time.time() else None,
    }


async def _sessions(svc: Services, partner: Partner) -> dict[int, str]:
    return {d.id: d.session_id for d in await svc.store.list_devices(partner.id)}


async def _endpoint(request: Request, partner: Partner) -> WebhookEndpoint:
    endpoint = await services(request).store.webhook_by_public_id(
        partner.id, request.path_params["webhook_id"])
    if endpoint is None:
        raise NotFound("no such webhook", code="webhook_not_found")
    return endpoint


def _events(data: dict[str, Any]) -> tuple[str, ...]:
    events = data.get("events", ["*"])
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise BadRequest("events: a non-empty list of event types", code="invalid_field",
                         field="events")
    unknown = [e for e in events if e not in EVENT_TYPES and e not in PATTERNS]
    if unknown:
        raise BadRequest(f"events: unknown {', '.join(unknown)}; known: "
                         f"{', '.join(PATTERNS + EVENT_TYPES)}", code="invalid_field",
                         field="events")
    return tuple(dict.fromkeys(events))


async def add_webhook(conn: HTTPConnection, svc: Services, partner_id: int, url: str,
                      events: tuple[str, ...], session_id: str | None,
                      ) -> tuple[WebhookEndpoint, str]:
    """Create an endpoint (the API and the console both come here): the device filter, the
    per-partner limit, the SSRF check, the audit entry. Returns it with its secret, which is
    shown this once."""
    device_id = None
    if session_id:
        device = await svc.store.device_by_session(partner_id, session_id)
        if device is None:
            raise NotFound("no such device", code="device_not_found")
        device_id = device.id
    if len(await svc.store.list_webhooks(partner_id)) >= MAX_WEBHOOKS:
        raise BadRequest(f"at most {MAX_WEBHOOKS} webhooks per partner", code="limit_reached")
    settings = svc.config.webhooks
    await vet(url, allow_private=settings.allow_private_targets, allow_http=settings.allow_http)
    nonce = new_nonce()
    endpoint = await svc.store.create_webhook(partner_id, "we_" + secrets.token_hex(8), url,
                                              nonce, events, device_id)
    await record(conn, partner_id, "webhook.created", endpoint.public_id, url=url,
                 events=list(events))
    return endpoint, endpoint_secret(svc.vault, nonce)


async def create_webhook(request: Request) -> Response:
    partner = await require_partner(request, "webhooks:manage")
    svc = services(request)
    data = await json_body(request)
    url = text_field(data, "url", max_len=2000)
    events = _events(data)
    session_id = text_field(data, "session_id", required=False, max_len=64)
    endpoint, secret = await add_webhook(request, svc, partner.id, url, events, session_id)
    view = webhook_view(svc, endpoint, await _sessions(svc, partner))
    return success(201, webhook=view, secret=secret)


async def list_webhooks(request: Request) -> Response:
    partner = await require_partner(request, "webhooks:manage")
    svc = services(request)
    sessions = await _sessions(svc, partner)
    return success(webhooks=[webhook_view(svc, e, sessions)
                             for e in await svc.store.list_webhooks(partner.id)])


async def get_webhook(request: Request) -> Response:
    partner = await require_partner(request, "webhooks:manage")
    svc = services(request)
    endpoint = await _endpoint(request, partner)
    return success(webhook=webhook_view(svc, endpoint, await _sessions(svc, partner)))


async def delete_webhook(request: Request) -> Response:
    partner = await require_partner(request, "webhooks:manage")
    endpoint = await _endpoint(request, partner)
    await services(request).store.delete_webhook(partner.id, endpoint.id)
    await record(request, partner.id, "webhook.deleted", endpoint.public_id, url=endpoint.url)
    return success(message="Webhook deleted", webhook_id=endpoint.public_id)


async def rotate_secret(request: Request) -> Response:
    partner = await require_partner(request, "webhooks:manage")
    svc = services(request)
    endpoint = await _endpoint(request, partner)
    nonce = new_nonce()
    until = time.time() + svc.config.webhooks.secret_overlap
    await svc.store.rotate_webhook_secret(partner.id, endpoint.id, nonce, until)
    await record(request, partner.id, "webhook.secret_rotated", endpoint.public_id,
                 previous_valid_until=iso(until))
    return success(secret=endpoint_secret(svc.vault, nonce), previous_valid_until=iso(until))


async def enable_webhook(request: Request) -> Response:
    partner = await require_partner(request, "webhooks:manage")
    endpoint = await _endpoint(request, partner)
    await services(request).store.set_webhook_status(endpoint.id, "active", None)
    await record(request, partner.id, "webhook.enabled", endpoint.public_id)
    return success(message="Webhook enabled", webhook_id=endpoint.public_id)


async def test_webhook(request: Request) -> Response:
    partner = await require_partner(request, "webhooks:manage")
    svc = services(request)
    endpoint = await _endpoint(request, partner)
    event_id = await svc.store.fanout(partner.id, None, "webhook.test",
                                      {"webhook_id": endpoint.public_id, "message": "ping"},
                                      endpoint_id=endpoint.id)
    svc.webhooks.wake()
    return success(202, message="Test event queued", event_id=event_id)


async def _delivery_view(svc: Services, d: WebhookDelivery) -> dict[str, Any]:
    attempts = await svc.store.delivery_attempts(d.id)
    return {
        "delivery_id": d.id, "event_id": d.event_id, "type": d.event_type, "status": d.status,
        "attempts": [{"at": iso(a.at), "status_code": a.status_code,
                      "latency_ms": round(a.latency_ms, 1), "error": a.error,
                      "response": a.response} for a in attempts],
        "next_attempt_at": iso(d.next_attempt_at) if d.status == "pending" else None,
        "created_at": iso(d.created_at), "delivered_at": iso(d.delivered_at),
    }


async def list_deliveries(request: Request) -> Response:
    partner = await require_partner(request, "webhooks:manage")
    svc = services(request)
    endpoint = await _endpoint(request, partner)
    raw = request.query_params.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 200:
        raise BadRequest("limit: a whole number from 1 to 200", code="invalid_field",
                         field="limit")
    deliveries = await svc.store.list_deliveries(endpoint.id, int(raw))
    return success(deliveries=[await _delivery_view(svc, d) for d in deliveries])


async def redeliver(request: Request) -> Response:
    partner = await require_partner(request, "webhooks:manage")
    svc = services(request)
    endpoint = await _endpoint(request, partner)
    raw = request.path_params["delivery_id"]
    if not raw.isdigit() or not await svc.store.redeliver(endpoint.id, int(raw)):
        raise NotFound("no such delivery", code="delivery_not_found")
    svc.webhooks.wake()
    return success(202, message="Delivery queued again", delivery_id=int(raw))


routes = [
    Route("/partner/webhooks", create_webhook, methods=["POST"]),
    Route("/partner/webhooks", list_webhooks, methods=["GET"]),
    Route("/partner/webhooks/{webhook_id}", get_webhook, methods=["GET"]),
    Route("/partner/webhooks/{webhook_id}", delete_webhook, methods=["DELETE"]),
    Route("/partner/webhooks/{webhook_id}/rotate-secret", rotate_secret, methods=["POST"]),
    Route("/partner/webhooks/{webhook_id}/enable", enable_webhook, methods=["POST"]),
    Route("/partner/webhooks/{webhook_id}/test", test_webhook, methods=["POST"]),
    Route("/partner/webhooks/{webhook_id}/deliveries", list_deliveries, methods=["GET"]),
    Route("/partner/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver", redeliver,
          methods=["POST"]),
]
