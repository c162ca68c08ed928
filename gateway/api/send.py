"""The per-device send URL: the token in the path is the credential; GET or POST.

A send is committed to the outbox before any 2xx. The request then waits up to
`delivery.send_wait` for WhatsApp to take it: 200 "Message sent" if it did, else 202
"Message queued" (type stays "success", so seed clients keep working). `async=1` answers 202 at
once. `Idempotency-Key` (or `ref=`) makes a retried request return the first answer.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from functools import lru_cache
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.auth import device_by_send_token, services
from gateway.api.params import send_params, text_field
from gateway.api.responses import JSON
from gateway.compose import Draft, compose, flag, read_fields
from gateway.errors import BadRequest, Conflict, Unprocessable
from gateway.phone import normalize_phone
from gateway.recipients import require_on_whatsapp
from gateway.services import Services
from gateway.store import Device, Idempotency, IdempotentReplay, Message
from sessions.ids import new_message_id
from sessions.state import LINKED_STATES, DeviceStatus

MAX_KEY = 255
SENT = ("sent", "delivered", "read")

# `phonenumbers` takes ~40 us a number, a quarter of a bare request; senders on a LAN send to
# the same few numbers over and over. Only valid numbers are remembered (errors raise).
_recipient = lru_cache(maxsize=4096)(normalize_phone)


def send_answer(device: Device, message: Message) -> JSON:
    """The answer for a message in its current state (also used to replay idempotent sends)."""
    base: dict[str, Any] = {"type": "success", "device": device.name, "message_id": message.id,
                            "status": message.status}
    if message.status in SENT:
        return JSON({**base, "message": "Message sent"}, status_code=200)
    if message.status in ("queued", "sending"):
        return JSON({**base, "message": "Message queued"}, status_code=202)
    return JSON({"type": "error", "code": f"message_{message.status}",
                 "message": f"message {message.status}: {message.error or 'no reason given'}",
                 "message_id": message.id, "status": message.status, "device": device.name},
                status_code=502)


def _idempotency(request: Request, scope: str, params: dict[str, Any], to: str,
                 draft: Draft) -> Idempotency | None:
    key = request.headers.get("idempotency-key") or params.get("ref")
    if key is None:
        return None
    key = str(key).strip()
    if not key or len(key) > MAX_KEY:
        raise BadRequest(f"Idempotency-Key: 1 to {MAX_KEY} characters", code="invalid_field",
                         field="Idempotency-Key")
    return Idempotency(scope, key, draft.fingerprint(to))


async def send(request: Request) -> Response:
    svc = services(request)
    device = await device_by_send_token(request, time.time())
    params, upload = await send_params(request)
    return await accept(request, svc, device, params, upload, f"device:{device.id}")


async def accept(request: Request, svc: Services, device: Device, params: dict[str, Any],
                 upload: UploadFile | None, idem_scope: str) -> Response:
    """Check, commit and (up to send_wait) watch one message: both send routes end here."""
    to = _recipient(text_field(params, "to", max_len=40))
    ask = read_fields(params, upload)
    sup = svc.manager.get(device.id)
    status = sup.status if sup else DeviceStatus(device.status)
    if status not in LINKED_STATES:
        raise Conflict(f"device is not linked (status: {status.value}); link it first",
                       code="device_not_linked", status=status.value)
    draft = await compose(ask, settings=svc.config.delivery, media=svc.media, http=svc.http)
    if svc.config.delivery.check_recipients or flag(params.get("check")):
        await require_on_whatsapp(svc, device, to)
    idem = _idempotency(request, idem_scope, params, to, draft)
    inflight = svc.inflight
    if idem is not None and (idem.scope, idem.key) in inflight:
        raise Conflict("a request with this Idempotency-Key is still in progress",
                       code="idempotency_in_progress")
    message_id = new_message_id()
    send_wait = svc.config.delivery.send_wait
    outcomes = svc.manager.outcomes
    # Watch before the enqueue, so an outcome that comes first is not missed.
    waiter = outcomes.watch(message_id) if send_wait > 0 and not flag(
        params.get("async")) else None
    try:
        if idem is not None:
            inflight.add((idem.scope, idem.key))
        try:
            message = await svc.store.enqueue_message(
                message_id, device.partner_id, device.id, to, draft.kind, draft.text,
                time.time() + svc.config.delivery.queue_ttl, idem,
                svc.config.delivery.idempotency_ttl, draft.payload_json(), draft.media_sha256)
        except IdempotentReplay as replay:
            return await _replay(svc, device, replay)
        svc.manager.wake(device.id)
        if waiter is None:
            return send_answer(device, message)  # committed as queued: nothing to re-read
        await asyncio.wait({waiter}, timeout=send_wait)
        if waiter.done() and waiter.result() == "sent":
            return send_answer(device, replace(message, status="sent"))
        # Still queued, or failed / expired (the answer carries the reason): ask the store.
        current = await svc.store.message_by_id(device.partner_id, message_id)
        return send_answer(device, current or message)
    finally:
        if waiter is not None:
            outcomes.forget(message_id, waiter)
        if idem is not None:
            inflight.discard((idem.scope, idem.key))


async def _replay(svc: Services, device: Device, replay: IdempotentReplay) -> Response:
    if not replay.same:
        raise Unprocessable("this Idempotency-Key was used with a different payload",
                            code="idempotency_mismatch")
    first = await svc.store.message_by_id(device.partner_id, replay.message_id or "")
    if first is None:
        raise Conflict("the first request with this key did not complete",
                       code="idempotency_in_progress")
    response = send_answer(device, first)
    response.headers["Idempotent-Replayed"] = "true"
    return response


routes = [Route("/wa/{device_token}/send", send, methods=["GET", "POST"])]
