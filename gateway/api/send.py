"""The per-device send URL: the token in the path is the credential; GET or POST."""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.auth import device_by_send_token, services
from gateway.api.params import any_params, text_field
from gateway.api.responses import JSON, success
from gateway.errors import Conflict, DriverError, NotConnected
from gateway.phone import normalize_phone
from sessions.drivers.base import OutgoingMessage
from sessions.ids import new_message_id
from sessions.state import DeviceStatus

log = logging.getLogger("wagate.send")

MAX_TEXT = 4096 * 4  # WhatsApp's own text limit is 65,536; keep LAN payloads sane


async def send(request: Request) -> Response:
    svc = services(request)
    device = await device_by_send_token(request, time.time())
    params = await any_params(request)
    to = normalize_phone(text_field(params, "to", max_len=40))
    text = text_field(params, "message", max_len=MAX_TEXT)
    sup = svc.manager.get(device.id)
    if sup is None or sup.status is not DeviceStatus.CONNECTED:
        status = sup.status.value if sup else device.status
        raise Conflict(f"device is not connected (status: {status})", code="device_not_connected",
                       status=status)
    message_id = new_message_id()
    await svc.store.create_message(message_id, device.partner_id, device.id, to, "text", text)
    try:
        wa_id = await sup.send(OutgoingMessage("text", to, text), message_id)
    except NotConnected as exc:
        await svc.store.set_message_failed(message_id, exc.reason)
        raise Conflict(f"device is not connected: {exc.reason}", code="device_not_connected",
                       message_id=message_id) from None
    except DriverError as exc:
        await svc.store.set_message_failed(message_id, exc.reason)
        return JSON({"type": "error", "code": "send_failed",
                     "message": f"WhatsApp did not accept the message: {exc.reason}",
                     "message_id": message_id}, status_code=502)
    await svc.store.set_message_sent(message_id, wa_id)
    return success(message="Message sent", device=device.name, message_id=message_id,
                   status="sent")


routes = [Route("/wa/{device_token}/send", send, methods=["GET", "POST"])]
