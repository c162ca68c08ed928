"""Operator routes used by the CLI on the host (`wagate qr`, `wagate sim scan`)."""

from __future__ import annotations

import time

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.auth import services
from gateway.api.params import json_body, text_field
from gateway.api.responses import JSON, success
from gateway.errors import BadRequest, Conflict, DriverError, NotFound, ServiceUnavailable
from gateway.operator import require_operator
from gateway.phone import normalize_phone
from gateway.store import Device
from sessions.state import DeviceStatus
from sessions.supervisor import DeviceSupervisor


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


routes = [
    Route("/admin/devices/{session_id}/qr", admin_qr, methods=["GET"]),
    Route("/admin/sim/devices/{session_id}/scan", admin_sim_scan, methods=["POST"]),
]
