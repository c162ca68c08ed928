"""The phone's side of the simulated WhatsApp; mounted only while that driver is active."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.auth import partner_device, require_partner, services
from gateway.api.params import json_body, text_field
from gateway.api.responses import success
from gateway.errors import BadRequest, Conflict, DriverError, ServiceUnavailable
from gateway.phone import normalize_phone
from sessions.drivers.simulated import Faults, SimulatedDriver, SimulatedWhatsApp


async def _world(request: Request) -> tuple[SimulatedWhatsApp, str]:
    scope = "devices:read" if request.method == "GET" else "devices:write"
    partner = await require_partner(request, scope)
    device = await partner_device(request, partner)
    driver = services(request).driver
    if not isinstance(driver, SimulatedDriver):
        raise ServiceUnavailable("the simulated driver is not active")
    return driver.world, device.session_id


def _conflict(exc: DriverError) -> Conflict:
    return Conflict(exc.reason, code="simulator_refused")


async def sim_state(request: Request) -> Response:
    world, key = await _world(request)
    return success(**world.state(key))


async def sim_scan(request: Request) -> Response:
    world, key = await _world(request)
    data = await json_body(request)
    phone = normalize_phone(text_field(data, "phone", max_len=40), "phone")
    code = text_field(data, "code", required=False, max_len=16) or None
    try:
        jid = await world.scan(key, phone, code)
    except DriverError as exc:
        raise _conflict(exc) from None
    return success(message="Linked", phone=phone, jid=jid)


async def sim_inbound(request: Request) -> Response:
    world, key = await _world(request)
    data = await json_body(request)
    sender = normalize_phone(text_field(data, "from", max_len=40), "from")
    text = text_field(data, "message", max_len=65536)
    try:
        wa_id = world.inbound(key, sender, text)
    except DriverError as exc:
        raise _conflict(exc) from None
    return success(message_id=wa_id)


async def sim_sent(request: Request) -> Response:
    world, key = await _world(request)
    raw = request.query_params.get("limit", "1000")
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise BadRequest("limit: a whole number from 1 to 100000", code="invalid_field",
                         field="limit")
    return success(messages=world.received(key, int(raw)))


async def sim_unlink(request: Request) -> Response:
    world, key = await _world(request)
    await world.phone_logout(key)
    return success(message="Removed from the phone's linked devices")


async def sim_ban(request: Request) -> Response:
    world, key = await _world(request)
    data = await json_body(request, required=False)
    seconds = data.get("seconds", 3600)
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
        raise BadRequest("seconds: must be a positive number", code="invalid_field",
                         field="seconds")
    try:
        await world.ban(key, float(seconds))
    except DriverError as exc:
        raise _conflict(exc) from None
    return success(message="Banned", seconds=seconds)


async def sim_faults(request: Request) -> Response:
    world, key = await _world(request)
    data = await json_body(request)
    values: dict[str, float] = {}
    for name, top in (("connect_failure_rate", 1.0), ("send_failure_rate", 1.0),
                      ("send_delay", 3600.0)):
        value = data.get(name, 0.0)
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value <= top:
            raise BadRequest(f"{name}: must be a number from 0 to {top:g}", code="invalid_field",
                             field=name)
        values[name] = float(value)
    world.faults[key] = Faults(**values)
    return success(faults=values)


async def sim_drop(request: Request) -> Response:
    world, key = await _world(request)
    try:
        world.drop(key)
    except DriverError as exc:
        raise _conflict(exc) from None
    return success(message="Connection dropped; it reconnects by itself")


routes = [
    Route("/sim/devices/{session_id}", sim_state, methods=["GET"]),
    Route("/sim/devices/{session_id}/scan", sim_scan, methods=["POST"]),
    Route("/sim/devices/{session_id}/inbound", sim_inbound, methods=["POST"]),
    Route("/sim/devices/{session_id}/sent", sim_sent, methods=["GET"]),
    Route("/sim/devices/{session_id}/unlink", sim_unlink, methods=["POST"]),
    Route("/sim/devices/{session_id}/ban", sim_ban, methods=["POST"]),
    Route("/sim/devices/{session_id}/drop", sim_drop, methods=["POST"]),
    Route("/sim/devices/{session_id}/faults", sim_faults, methods=["POST"]),
]
