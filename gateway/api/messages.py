"""Message status and history: per message (partner or send-URL holder), per device, inbound."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.auth import device_by_send_token, partner_device, require_partner, services
from gateway.api.params import send_params
from gateway.api.responses import iso, success
from gateway.api.send import accept
from gateway.compose import payload_view
from gateway.errors import BadRequest, NotFound
from gateway.phone import normalize_phone
from gateway.store import Message, Store

STATUSES = ("queued", "sending", "sent", "delivered", "read", "failed", "expired")
MAX_PAGE = 200


async def message_view(store: Store, message: Message, *, events: bool) -> dict[str, Any]:
    view: dict[str, Any] = {
        "message_id": message.id, "to": message.recipient, "kind": message.kind,
        "message": message.body, "status": message.status, "error": message.error,
        "attempts": message.attempts, "in_doubt": message.in_doubt,
        "created_at": iso(message.created_at), "updated_at": iso(message.updated_at),
        **payload_view(message.payload),
    }
    if events:
        view["events"] = [{"status": e.status, "at": iso(e.at), "detail": e.detail}
                          for e in await store.message_events(message.id)]
    return view


async def partner_message(request: Request) -> Response:
    partner = await require_partner(request, "messages:read")
    store = services(request).store
    message = await store.message_by_id(partner.id, request.path_params["message_id"])
    if message is None:
        raise NotFound("no such message", code="message_not_found")
    device = await store.device_by_id(message.device_id)
    view = await message_view(store, message, events=True)
    return success(**view, session_id=device.session_id if device else None)


async def partner_send(request: Request) -> Response:
    """The partner API's send: the same fields and answers as the send URL."""
    partner = await require_partner(request, "messages:send")
    device = await partner_device(request, partner)
    params, upload = await send_params(request)
    return await accept(request, services(request), device, params, upload,
                        f"device:{device.id}")


async def send_url_message(request: Request) -> Response:
    device = await device_by_send_token(request, time.time())
    store = services(request).store
    message = await store.message_by_id(device.partner_id, request.path_params["message_id"])
    if message is None or message.device_id != device.id:
        raise NotFound("no such message", code="message_not_found")
    return success(**await message_view(store, message, events=True))


def _time(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadRequest(f"{name}: an ISO 8601 time or a unix timestamp", code="invalid_field",
                         field=name) from None


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise BadRequest(f"limit: a whole number from 1 to {MAX_PAGE}", code="invalid_field",
                         field="limit")
    return int(raw)


async def device_messages(request: Request) -> Response:
    partner = await require_partner(request, "messages:read")
    device = await partner_device(request, partner)
    q = request.query_params
    status = q.get("status")
    if status is not None and status not in STATUSES:
        raise BadRequest(f"status: one of {', '.join(STATUSES)}", code="invalid_field",
                         field="status")
    recipient = normalize_phone(q["to"], "to") if q.get("to") else None
    limit = _limit(request)
    store = services(request).store
    page = await store.list_messages(
        partner.id, device.id, status=status, recipient=recipient,
        since=_time(q.get("since"), "since"), until=_time(q.get("until"), "until"),
        before=q.get("cursor"), limit=limit + 1)
    more = len(page) > limit
    page = page[:limit]
    return success(messages=[await message_view(store, m, events=False) for m in page],
                   next_cursor=page[-1].id if more and page else None)


async def device_inbound(request: Request) -> Response:
    partner = await require_partner(request, "messages:read")
    device = await partner_device(request, partner)
    rows = await services(request).store.list_inbound(partner.id, device.id, _limit(request))
    return success(messages=[{"message_id": m.wa_id, "from": m.sender, "chat": m.chat,
                              "kind": m.kind, "message": m.body, "is_group": m.is_group,
                              "received_at": iso(m.received_at)} for m in rows])


routes = [
    Route("/partner/messages/{message_id}", partner_message, methods=["GET"]),
    Route("/wa/{device_token}/messages/{message_id}", send_url_message, methods=["GET"]),
    Route("/partner/devices/{session_id}/messages", device_messages, methods=["GET"]),
    Route("/partner/devices/{session_id}/messages", partner_send, methods=["POST"]),
    Route("/partner/devices/{session_id}/inbound", device_inbound, methods=["GET"]),
]
