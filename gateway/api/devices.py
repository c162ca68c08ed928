"""Devices: create, link (QR or pairing code), status, restart, logout, rotate, delete."""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.auth import (
    forget_send_tokens,
    may,
    partner_device,
    require_partner,
    require_user,
    services,
)
from gateway.api.params import json_body, text_field
from gateway.api.responses import JSON, iso, success
from gateway.errors import Conflict, PairingError, ServiceUnavailable
from gateway.phone import normalize_phone
from gateway.qr import qr_data_url
from gateway.security.audit import record
from gateway.services import Services
from gateway.store import Device
from gateway.tokens import DEVICE_TOKEN, new_nonce, new_session_id, token_hash
from sessions.state import DeviceStatus
from sessions.supervisor import DeviceSupervisor

UNLINKED_IDLE = (DeviceStatus.NEW, DeviceStatus.UNLINKED, DeviceStatus.LOGGED_OUT)


def device_view(svc: Services, device: Device, *, send: bool = True) -> dict[str, Any]:
    """A device as the API shows it; `send=False` (an API key without messages:send) leaves
    the send URL out, since it is the credential that sends."""
    sup = svc.manager.get(device.id)
    if sup is not None:
        status, phone, since, error = sup.status.value, sup.phone, sup.since, sup.last_error
    else:
        status, phone = device.status, device.phone
        since, error = device.status_since, device.last_error
    return {
        "session_id": device.session_id,
        "device_name": device.name,
        "status": status,
        "phone": phone,
        "since": iso(since),
        "last_error": error,
        "send_url": svc.send_url(device) if send else None,
        "qr_url": svc.qr_url(device),
        "created_at": iso(device.created_at),
    }


def _supervisor(svc: Services, device: Device) -> DeviceSupervisor:
    sup = svc.manager.get(device.id)
    if sup is None:
        raise ServiceUnavailable("device session is not running (the daemon may be stopping)",
                                 code="session_unavailable")
    return sup


async def add_device(svc: Services, partner_id: int, user_id: int, name: str,
                     ) -> tuple[Device, str, DeviceSupervisor]:
    """Create a device and start pairing (the API and the console both come here); returns it
    with its device token and its supervisor."""
    nonce = new_nonce()
    token = svc.vault.derive(DEVICE_TOKEN, nonce)
    device = await svc.store.create_device(partner_id, user_id, new_session_id(), name, nonce,
                                           token_hash(token))
    sup = svc.manager.add(device)
    await sup.request_pairing()
    return device, token, sup


async def create_device(request: Request) -> Response:
    partner = await require_partner(request, "devices:write")
    user = await require_user(request, partner)
    data = await json_body(request)
    name = text_field(data, "device_name", max_len=100)
    svc = services(request)
    device, token, sup = await add_device(svc, partner.id, user.id, name)
    send = may(request, "messages:send")
    return success(201, session_id=device.session_id, device_token=token if send else None,
                   send_url=svc.send_url(device) if send else None, qr_url=svc.qr_url(device),
                   device_name=name, status=sup.status.value)


@lru_cache(maxsize=512)
def _qr_image(code: str) -> str:
    return qr_data_url(code)


async def device_qr(request: Request) -> Response:
    partner = await require_partner(request, "devices:read")
    device = await partner_device(request, partner)
    sup = _supervisor(services(request), device)
    if sup.status is DeviceStatus.CONNECTED:
        return JSON({"type": "connected", "phone": sup.phone})
    if sup.qr is not None:
        expires_in = max(0.0, (sup.qr_expires_at or time.time()) - time.time())
        return success(qr=_qr_image(sup.qr), expires_in=round(expires_in, 1))
    if sup.status in UNLINKED_IDLE:
        await sup.request_pairing()  # a timed-out or logged-out device starts a new QR stream
    message = "QR not ready, retry in 3s"
    if sup.linked:
        message = f"device is linked and {sup.status.value}; no QR needed, retry in 3s"
    return JSON({"type": "pending", "message": message, "status": sup.status.value,
                 "last_error": sup.last_error}, headers={"Retry-After": "3"})


async def device_status(request: Request) -> Response:
    partner = await require_partner(request, "devices:read")
    device = await partner_device(request, partner)
    return success(**device_view(services(request), device,
                                 send=may(request, "messages:send")))


async def delete_device(request: Request) -> Response:
    partner = await require_partner(request, "devices:write")
    device = await partner_device(request, partner)
    svc = services(request)
    await svc.store.delete_device(partner.id, device.id)  # the send URL is dead from here on
    forget_send_tokens(request)
    await record(request, partner.id, "device.deleted", device.session_id, name=device.name)
    await svc.manager.remove(device.id, logout=True)
    await svc.driver.forget(device.session_id)
    return success(message="Device removed", session_id=device.session_id)


async def pair_device(request: Request) -> Response:
    partner = await require_partner(request, "devices:write")
    device = await partner_device(request, partner)
    data = await json_body(request)
    phone = normalize_phone(text_field(data, "phone", max_len=40), "phone")
    sup = _supervisor(services(request), device)
    if sup.linked:
        raise Conflict(f"device is already linked ({sup.status.value})", code="already_linked",
                       status=sup.status.value)
    try:
        code = await sup.pair_phone(phone)
    except PairingError as exc:
        raise Conflict(f"pairing failed: {exc.reason}", code="pairing_failed") from None
    pretty = code if "-" in code else f"{code[:4]}-{code[4:]}"
    return success(pairing_code=pretty, phone=phone,
                   message="On the phone: WhatsApp > Linked devices > Link with phone number")


async def restart_device(request: Request) -> Response:
    partner = await require_partner(request, "devices:write")
    device = await partner_device(request, partner)
    sup = _supervisor(services(request), device)
    if sup.linked:
        await sup.restart()
    else:
        await sup.request_pairing()
    return success(message="Session restarted", status=sup.status.value)


async def logout_device(request: Request) -> Response:
    partner = await require_partner(request, "devices:write")
    device = await partner_device(request, partner)
    sup = _supervisor(services(request), device)
    if not sup.linked:
        raise Conflict(f"device is not linked ({sup.status.value})", code="device_not_linked",
                       status=sup.status.value)
    await sup.logout()
    forget_send_tokens(request)
    return success(message="Logged out; scan a new QR code to link again",
                   status=sup.status.value)


async def rotate_token(request: Request) -> Response:
    partner = await require_partner(request, "devices:write")
    device = await partner_device(request, partner)
    svc = services(request)
    nonce = new_nonce()
    token = svc.vault.derive(DEVICE_TOKEN, nonce)
    grace_until = time.time() + svc.config.sessions.token_grace_seconds
    await svc.store.rotate_device_token(partner.id, device.id, nonce, token_hash(token),
                                        grace_until)
    forget_send_tokens(request)
    await record(request, partner.id, "device.token_rotated", device.session_id,
                 previous_valid_until=iso(grace_until))
    rotated = await svc.store.device_by_session(partner.id, device.session_id)
    assert rotated is not None
    send = may(request, "messages:send")
    return success(device_token=token if send else None,
                   send_url=svc.send_url(rotated) if send else None,
                   previous_valid_until=iso(grace_until))


routes = [
    Route("/partner/devices", create_device, methods=["POST"]),
    Route("/partner/devices/{session_id}", delete_device, methods=["DELETE"]),
    Route("/partner/devices/{session_id}/qr", device_qr, methods=["GET"]),
    Route("/partner/devices/{session_id}/status", device_status, methods=["GET"]),
    Route("/partner/devices/{session_id}/pair", pair_device, methods=["POST"]),
    Route("/partner/devices/{session_id}/restart", restart_device, methods=["POST"]),
    Route("/partner/devices/{session_id}/logout", logout_device, methods=["POST"]),
    Route("/partner/devices/{session_id}/rotate-token", rotate_token, methods=["POST"]),
]
