"""The device link page an end user opens from a partner's link: `GET /link/{link_token}`.

It shows the device's name and a live QR code: the page listens to `…/events` (server-sent
events, one per change of status or QR code, driven by the supervisor's `changed()`), and polls
`…/state` when EventSource is unavailable or keeps failing. It offers a pairing code instead
(`POST …/pair`), and ends on the linked phone number. The page carries nothing but the link
token: no partner key, no device token, no send URL.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.api.auth import services
from gateway.api.links import find_link
from gateway.api.params import json_body, text_field
from gateway.api.responses import JSON, error_response
from gateway.errors import ApiError, Conflict, NotFound, PairingError
from gateway.pages.render import html, qr_image, qr_version, secure
from gateway.phone import normalize_phone
from gateway.security.guard import guard_link_page, lookup_failed
from gateway.services import Services
from gateway.store import Device
from gateway.store.base import LinkToken
from sessions.state import LINKED_STATES, DeviceStatus
from sessions.supervisor import DeviceSupervisor

IDLE = (DeviceStatus.NEW, DeviceStatus.UNLINKED, DeviceStatus.LOGGED_OUT)
KEEPALIVE = 15.0  # seconds between SSE comments on a quiet stream
STREAM_SECONDS = 300.0  # a stream ends after this; EventSource reconnects (and re-checks the link)

GONE = NotFound("this link has expired or was revoked", code="link_not_found")


async def _link(request: Request) -> tuple[Services, LinkToken, Device]:
    svc = services(request)
    guard_link_page(request)  # per-address limit, brute-force block (429)
    found = await find_link(svc, request.path_params["link_token"])
    if found is None:
        lookup_failed(request)
        raise GONE
    partner = await svc.security.partner(svc.store, found[1].partner_id, time.time())
    if partner is None or partner.status != "active":
        raise GONE  # a suspended partner's link pages are off too
    return svc, *found


def _missing() -> Response:
    return html("link_missing.html", status_code=404)


def view(svc: Services, token: str, device: Device) -> dict[str, Any]:
    """What the page shows, as JSON: `view` is one of qr, waiting, expired, connecting,
    connected, linked (linked but not connected), unavailable."""
    sup = svc.manager.get(device.id)
    state: dict[str, Any] = {"device_name": device.name, "status": None, "view": "unavailable",
                             "qr": None, "expires_in": None, "phone": None}
    if sup is None:
        return state
    status = sup.status
    state["status"] = status.value
    if status is DeviceStatus.CONNECTED:
        state.update(view="connected", phone=_plus(sup.phone))
    elif status is DeviceStatus.CONNECTING and sup.linked:
        state.update(view="connecting", phone=_plus(sup.phone))
    elif status in LINKED_STATES:
        state.update(view="linked", phone=_plus(sup.phone))
    elif sup.qr is not None:
        expires = max(0.0, (sup.qr_expires_at or time.time()) - time.time())
        state.update(view="qr", qr=f"/link/{token}/qr.png?v={qr_version(sup.qr)}",
                     expires_in=round(expires, 1))
    elif status is DeviceStatus.PAIRING:
        state["view"] = "waiting"
    else:
        state["view"] = "expired"
    return state


def _plus(phone: str | None) -> str | None:
    return f"+{phone}" if phone and not phone.startswith("+") else phone


async def _start_if_idle(sup: DeviceSupervisor | None) -> None:
    if sup is not None and not sup.linked and sup.status in IDLE:
        await sup.request_pairing()


async def link_page(request: Request) -> Response:
    """The device link page (HTML; 404 page for an unknown, expired or revoked link)."""
    try:
        svc, _, device = await _link(request)
    except NotFound:
        return _missing()
    await _start_if_idle(svc.manager.get(device.id))
    token = request.path_params["link_token"]
    return html("link.html", token=token, state=view(svc, token, device))


async def link_state(request: Request) -> Response:
    """What the link page shows, as JSON (the page polls it when SSE is unavailable)."""
    svc, _, device = await _link(request)
    return secure(JSON(view(svc, request.path_params["link_token"], device)))


async def link_qr(request: Request) -> Response:
    """The current QR code as PNG."""
    svc, _, device = await _link(request)
    sup = svc.manager.get(device.id)
    if sup is None or sup.qr is None:
        raise NotFound("no QR code is being shown", code="qr_not_ready")
    return secure(Response(qr_image(sup.qr), media_type="image/png"))


async def link_start(request: Request) -> Response:
    """Ask for a new round of QR codes after the previous ones expired."""
    try:
        svc, _, device = await _link(request)
    except NotFound:
        return _missing() if _is_form(request) else error_response(GONE)
    await _start_if_idle(svc.manager.get(device.id))
    token = request.path_params["link_token"]
    if _is_form(request):
        return RedirectResponse(f"/link/{token}", status_code=303)
    return secure(JSON(view(svc, token, device)))


def _is_form(request: Request) -> bool:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return ctype in ("application/x-www-form-urlencoded", "multipart/form-data")


async def link_pair(request: Request) -> Response:
    """A pairing code for a phone number: JSON in, JSON out (the page's script), or a plain
    form post answered with the page itself (no script needed)."""
    form = _is_form(request)
    try:
        svc, _, device = await _link(request)
    except NotFound:
        return _missing() if form else error_response(GONE)
    token = request.path_params["link_token"]
    try:
        if form:
            data = {k: v for k, v in (await request.form(max_files=0, max_fields=10)).items()
                    if isinstance(v, str)}
        else:
            data = await json_body(request)
        phone = normalize_phone(text_field(data, "phone", max_len=40), "phone")
        code = await _pairing_code(svc, device, phone)
    except ApiError as exc:
        if not form:
            raise
        return html("link.html", status_code=exc.status, token=token,
                    state=view(svc, token, device), pair_error=exc.message)
    if form:
        return html("link.html", token=token, state=view(svc, token, device), pairing_code=code,
                    pair_phone=_plus(phone))
    return secure(JSON({"type": "success", "pairing_code": code, "phone": _plus(phone)}))


async def _pairing_code(svc: Services, device: Device, phone: str) -> str:
    sup = svc.manager.get(device.id)
    if sup is None:
        raise Conflict("the device is not available right now; try again shortly",
                       code="session_unavailable")
    if sup.linked:
        raise Conflict("this device is already linked", code="already_linked",
                       status=sup.status.value)
    try:
        code = await sup.pair_phone(phone)
    except PairingError as exc:
        raise Conflict(f"could not get a pairing code: {exc.reason}",
                       code="pairing_failed") from None
    if len(code) == 8 and "-" not in code:
        code = f"{code[:4]}-{code[4:]}"
    return code


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


async def link_events(request: Request) -> Response:
    """Server-sent events: one `state` event per change, `gone` when the link dies."""
    svc, link, device = await _link(request)
    token = request.path_params["link_token"]

    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 2000\n\n"
        started = time.monotonic()
        shown: tuple[Any, ...] | None = None
        while True:
            # Snapshot and wait with no await in between, so no change slips past unseen.
            state = view(svc, token, device)
            key = (state["view"], state["status"], state["qr"], state["phone"])
            if key != shown:
                shown = key
                yield _sse("state", state)
                continue
            sup = svc.manager.get(device.id)
            wait = min(KEEPALIVE, max(0.0, link.expires_at - time.time()) + 0.1)
            changed = False
            with anyio.move_on_after(wait):
                if sup is not None:
                    await sup.changed()
                    changed = True
                else:
                    await anyio.sleep(wait)
            if not changed:
                yield b": keepalive\n\n"
            if await find_link(svc, token) is None:
                yield _sse("gone", {"message": GONE.message})
                return
            if time.monotonic() - started > STREAM_SECONDS:
                return

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no",
                                      "X-Content-Type-Options": "nosniff",
                                      "Referrer-Policy": "no-referrer"})


routes = [
    Route("/link/{link_token}", link_page, methods=["GET"]),
    Route("/link/{link_token}/state", link_state, methods=["GET"]),
    Route("/link/{link_token}/events", link_events, methods=["GET"]),
    Route("/link/{link_token}/qr.png", link_qr, methods=["GET"]),
    Route("/link/{link_token}/pair", link_pair, methods=["POST"]),
    Route("/link/{link_token}/start", link_start, methods=["POST"]),
]
