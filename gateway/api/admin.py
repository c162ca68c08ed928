"""Operator routes used by the CLI on the host (`wagate qr`, `wagate sim scan`, `wagate partners
approve|suspend|resume|limits`, `wagate audit`): header `x-operator-token`. The operator console
(`gateway.pages.operator_console`) changes a partner's status through the same
`change_partner_status`."""

from __future__ import annotations

import time
from typing import Any

import anyio
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.auth import services
from gateway.api.keys import page_args
from gateway.api.params import email_field, json_body, text_field
from gateway.api.responses import JSON, iso, success
from gateway.errors import BadRequest, Conflict, DriverError, NotFound, ServiceUnavailable
from gateway.operator import require_operator
from gateway.phone import normalize_phone
from gateway.security.audit import entry_view, record
from gateway.services import Services
from gateway.store import Device, Partner
from gateway.tokens import PARTNER_KEY, new_token, token_hash
from sessions.state import DeviceStatus
from sessions.supervisor import DeviceSupervisor

PARTNER_STATUSES = ("active", "pending", "suspended")
MAX_RATE = 1_000_000


async def _device(request: Request) -> tuple[Device, DeviceSupervisor]:
    require_operator(request)
    sid = request.path_params["session_id"]
    svc = services(request)
    device = next((d for d in await svc.store.all_devices() if d.session_id == sid), None)
    if device is None:
        raise NotFound("no such device", code="device_not_found")
    sup = svc.manager.get(device.id)
    if sup is None:
        raise ServiceUnavailable("device session is not running", code="session_unavailable")
    return device, sup


async def admin_qr(request: Request) -> Response:
    """The raw QR string (the CLI draws it), waiting up to `wait` seconds for one."""
    _, sup = await _device(request)
    try:
        wait = min(60.0, max(0.0, float(request.query_params.get("wait", "0"))))
    except ValueError:
        raise BadRequest("wait: must be a number of seconds", code="invalid_field") from None
    if not sup.linked and sup.qr is None:
        await sup.request_pairing()
    with anyio.move_on_after(wait):
        while sup.qr is None and sup.status is not DeviceStatus.CONNECTED:
            await sup.changed()
    if sup.status is DeviceStatus.CONNECTED:
        return JSON({"type": "connected", "phone": sup.phone})
    if sup.qr is None:
        return JSON({"type": "pending", "status": sup.status.value,
                     "message": sup.last_error or "QR not ready"})
    return success(code=sup.qr, expires_in=round((sup.qr_expires_at or 0) - time.time(), 1))


async def admin_sim_scan(request: Request) -> Response:
    device, _ = await _device(request)
    from sessions.drivers.simulated import SimulatedDriver

    driver = services(request).driver
    if not isinstance(driver, SimulatedDriver):
        raise ServiceUnavailable("the simulated driver is not active")
    data = await json_body(request)
    phone = normalize_phone(text_field(data, "phone", max_len=40), "phone")
    try:
        jid = await driver.world.scan(device.session_id, phone)
    except DriverError as exc:
        raise Conflict(exc.reason, code="simulator_refused") from None
    return success(jid=jid)


# -- partners ---------------------------------------------------------------------------------


def partner_view(svc: Services, partner: Partner, counts: dict[str, Any]) -> dict[str, Any]:
    sec = svc.config.security
    return {
        "partner_id": partner.id, "name": partner.name, "email": partner.email,
        "domain": partner.domain, "status": partner.status,
        "status_reason": partner.status_reason, "created_at": iso(partner.created_at),
        "users": counts["users"], "devices": counts["devices"]["total"],
        "limits": {
            "api_rate_per_minute": partner.api_rate_per_minute,
            "send_rate_per_minute": partner.send_rate_per_minute,
            "effective_api_rate_per_minute": sec.api_rate_per_minute
            if partner.api_rate_per_minute is None else partner.api_rate_per_minute,
            "effective_send_rate_per_minute": sec.send_rate_per_minute
            if partner.send_rate_per_minute is None else partner.send_rate_per_minute,
        },
    }


async def find_partner(svc: Services, raw: str) -> Partner | None:
    """The partner a path's `{partner_id}` names (None: no such partner, or not an id)."""
    return await svc.store.partner_by_id(int(raw)) if raw.isdigit() and len(raw) < 19 else None


async def _partner(request: Request) -> tuple[Services, Partner]:
    require_operator(request)
    svc = services(request)
    partner = await find_partner(svc, request.path_params["partner_id"])
    if partner is None:
        raise NotFound("no such partner", code="partner_not_found")
    return svc, partner


async def _answer(svc: Services, partner_id: int, status: int = 200, **extra: Any) -> Response:
    partner = await svc.store.partner_by_id(partner_id)
    assert partner is not None
    counts = await svc.store.partner_counts(partner_id)
    return success(status, partner=partner_view(svc, partner, counts), **extra)


async def list_partners(request: Request) -> Response:
    require_operator(request)
    svc = services(request)
    status = request.query_params.get("status")
    if status is not None and status not in PARTNER_STATUSES:
        raise BadRequest(f"status: one of {', '.join(PARTNER_STATUSES)}", code="invalid_field",
                         field="status")
    out = []
    for p in await svc.store.list_partners():
        if status is None or p.status == status:
            out.append(partner_view(svc, p, await svc.store.partner_counts(p.id)))
    return success(partners=out)


async def create_partner(request: Request) -> Response:
    """The operator makes a partner (the way in when registration is closed)."""
    require_operator(request)
    svc = services(request)
    data = await json_body(request)
    name = text_field(data, "name", max_len=200)
    email = email_field(data)
    domain = text_field(data, "domain", required=False, max_len=253)
    key = new_token(PARTNER_KEY)
    partner = await svc.store.create_partner(name, email, domain, token_hash(key))
    await svc.store.set_key_hint(token_hash(key), key[-4:])
    await record(request, partner.id, "partner.created", str(partner.id), name=name,
                 email=email)
    return await _answer(svc, partner.id, 201, api_key=key)


async def get_partner(request: Request) -> Response:
    svc, partner = await _partner(request)
    return await _answer(svc, partner.id)


# change -> (the statuses it applies to, the new status, the audit action)
STATUS_CHANGES: dict[str, tuple[tuple[str, ...], str, str]] = {
    "approve": (("pending",), "active", "partner.approved"),
    "suspend": (("active", "pending"), "suspended", "partner.suspended"),
    "resume": (("suspended",), "active", "partner.resumed"),
}
MAX_REASON = 500


async def change_partner_status(conn: HTTPConnection, svc: Services, partner: Partner,
                                change: str, reason: str | None = None) -> None:
    """Approve, suspend or resume a partner: the status, the cached status the send path reads,
    holding or releasing its queued messages and webhook deliveries, the audit entry. The
    /admin routes and the operator console both come here. 409 invalid_partner_status when the
    change does not apply to the partner's status."""
    allowed_from, status, action = STATUS_CHANGES[change]
    if partner.status not in allowed_from:
        raise Conflict(f"the partner is {partner.status}", code="invalid_partner_status",
                       status=partner.status)
    reason = reason if status == "suspended" else None
    await svc.store.set_partner_status(partner.id, status, reason)
    svc.security.forget_partner(partner.id)
    svc.manager.hold(partner.id, status == "suspended")
    svc.webhooks.wake()  # a resumed partner's held webhook deliveries go out now
    await record(conn, partner.id, action, str(partner.id), previous=partner.status,
                 **({"reason": reason} if reason else {}))


async def _set_status(request: Request, change: str) -> Response:
    svc, partner = await _partner(request)
    reason = None
    if change == "suspend":
        data = await json_body(request, required=False)
        reason = text_field(data, "reason", required=False, max_len=MAX_REASON) or None
    await change_partner_status(request, svc, partner, change, reason)
    return await _answer(svc, partner.id)


async def approve_partner(request: Request) -> Response:
    """pending -> active: the partner's keys start working."""
    return await _set_status(request, "approve")


async def suspend_partner(request: Request) -> Response:
    """-> suspended: every partner route and send URL answers 403 partner_suspended, the
    partner's queued messages stay queued (they expire after delivery.queue_ttl) and its webhook
    deliveries wait."""
    return await _set_status(request, "suspend")


async def resume_partner(request: Request) -> Response:
    """suspended -> active: sending resumes where it stopped."""
    return await _set_status(request, "resume")


def _rate(data: dict[str, Any], name: str, current: int | None) -> int | None:
    if name not in data:
        return current
    value = data[name]
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_RATE:
        raise BadRequest(f"{name}: null (the default), 0 (unlimited) or requests per minute "
                         f"up to {MAX_RATE}", code="invalid_field", field=name)
    return value


async def set_limits(request: Request) -> Response:
    """Per-partner rate limits; a field left out keeps its value, null returns to the
    configured default, 0 is unlimited."""
    svc, partner = await _partner(request)
    data = await json_body(request)
    api = _rate(data, "api_rate_per_minute", partner.api_rate_per_minute)
    send = _rate(data, "send_rate_per_minute", partner.send_rate_per_minute)
    await svc.store.set_partner_limits(partner.id, api, send)
    svc.security.forget_partner(partner.id)
    await record(request, partner.id, "partner.limits_changed", str(partner.id),
                 api_rate_per_minute=api, send_rate_per_minute=send)
    return await _answer(svc, partner.id)


async def admin_audit(request: Request) -> Response:
    require_operator(request)
    svc = services(request)
    raw = request.query_params.get("partner_id")
    if raw is not None and not (raw.isdigit() and len(raw) < 19):
        raise BadRequest("partner_id: a partner's id", code="invalid_field", field="partner_id")
    limit, before = page_args(request)
    entries = await svc.store.list_audit(int(raw) if raw else None, limit + 1, before)
    more = len(entries) > limit
    entries = entries[:limit]
    return success(entries=[entry_view(e) for e in entries],
                   next_cursor=str(entries[-1].id) if more and entries else None)


routes = [
    Route("/admin/devices/{session_id}/qr", admin_qr, methods=["GET"]),
    Route("/admin/sim/devices/{session_id}/scan", admin_sim_scan, methods=["POST"]),
    Route("/admin/partners", list_partners, methods=["GET"]),
    Route("/admin/partners", create_partner, methods=["POST"]),
    Route("/admin/partners/{partner_id}", get_partner, methods=["GET"]),
    Route("/admin/partners/{partner_id}/approve", approve_partner, methods=["POST"]),
    Route("/admin/partners/{partner_id}/suspend", suspend_partner, methods=["POST"]),
    Route("/admin/partners/{partner_id}/resume", resume_partner, methods=["POST"]),
    Route("/admin/partners/{partner_id}/limits", set_limits, methods=["POST"]),
    Route("/admin/audit", admin_audit, methods=["GET"]),
]
