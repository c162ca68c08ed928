"""The phone's side of the simulated WhatsApp (/sim routes) and the operator's `sim scan`."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.operator import operator_token
from gateway.tokens import TokenVault
from tests.conftest import Gateway, Partner, start_gateway, wait_for
from tests.test_api_partners import SEND_FAILED_CODES, assert_error, assert_not_linked

TO = "919876543210"


async def sim_state(partner: Partner, session_id: str) -> dict[str, Any]:
    r = await partner.get(f"/sim/devices/{session_id}")
    assert r.status_code == 200, r.text
    state: dict[str, Any] = r.json()
    return state


async def wait_qr(partner: Partner, session_id: str) -> str:
    async def shown() -> str | None:
        qr: str | None = (await sim_state(partner, session_id))["qr"]
        return qr

    code: str = await wait_for(shown)
    return code


# -- state ---------------------------------------------------------------------------------------


async def test_state_of_a_pairing_then_linked_device(partner: Partner) -> None:
    device = await partner.create_device()
    sid = device["session_id"]
    await wait_qr(partner, sid)
    state = await sim_state(partner, sid)
    assert state["type"] == "success"
    assert state["session"] == "pairing"
    assert state["linked"] is False
    assert state["phone"] is None
    assert state["jid"] is None
    assert state["qr"].startswith("2@")
    assert state["pairing_code"] is None
    assert state["banned_until"] is None

    r = await partner.post(f"/sim/devices/{sid}/scan", json={"phone": "+91 98765 43210"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "success"
    assert body["phone"] == TO
    assert re.fullmatch(rf"{TO}:\d+@s\.whatsapp\.net", body["jid"])
    await partner.wait_status(sid, "connected")
    state = await sim_state(partner, sid)
    assert state["session"] == "connected"
    assert state["linked"] is True
    assert state["phone"] == TO
    assert state["jid"] == body["jid"]
    assert state["qr"] is None


# -- scan ----------------------------------------------------------------------------------------


async def test_scan_without_a_qr_code_is_409(partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    r = await partner.post(f"/sim/devices/{sid}/scan", json={"phone": "919812345678"})
    body = assert_error(r, 409, "simulator_refused")
    assert "QR" in body["message"]
    # logged out: no session is showing a code until the partner asks for one
    r = await partner.post(f"/partner/devices/{sid}/logout")
    assert r.status_code == 200, r.text
    r = await partner.post(f"/sim/devices/{sid}/scan", json={"phone": "919812345678"})
    assert_error(r, 409, "simulator_refused")
    assert (await partner.status(sid))["status"] == "logged_out"


async def test_scan_after_the_codes_expired_is_409(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path / "data", env={"WAGATE_SIMULATED_QR_CODES": "1",
                                                     "WAGATE_SIMULATED_QR_FIRST_SECONDS": "0.2"})
    try:
        partner = await gw.register()
        device = await partner.create_device()
        await partner.wait_status(device["session_id"], "unlinked")
        r = await partner.post(f"/sim/devices/{device['session_id']}/scan",
                               json={"phone": TO})
        assert_error(r, 409, "simulator_refused")
    finally:
        await gw.stop()


BAD_SCAN_BODIES: list[tuple[dict[str, Any], int, str]] = [
    ({}, 400, "missing_field"),
    ({"phone": ""}, 400, "missing_field"),
    ({"phone": 12}, 422, "invalid_phone"),
    ({"phone": "nope"}, 422, "invalid_phone"),
    ({"phone": ["919876543210"]}, 400, "invalid_field"),
]


async def test_scan_rejects_a_bad_phone(partner: Partner, subtests: pytest.Subtests) -> None:
    device = await partner.create_device()
    for body, status, code in BAD_SCAN_BODIES:
        with subtests.test(body=body):
            r = await partner.post(f"/sim/devices/{device['session_id']}/scan", json=body)
            assert_error(r, status, code, "phone")


async def test_scan_rejects_a_bad_code_field_and_non_json(partner: Partner) -> None:
    device = await partner.create_device()
    sid = device["session_id"]
    await wait_qr(partner, sid)
    r = await partner.post(f"/sim/devices/{sid}/scan", json={"phone": TO, "code": "x" * 17})
    assert_error(r, 400, "invalid_field", "code")
    r = await partner.post(f"/sim/devices/{sid}/scan", json={"phone": TO, "code": "ABCD-EFGH"})
    assert_error(r, 409, "simulator_refused")  # no pairing code was asked for
    r = await partner.post(f"/sim/devices/{sid}/scan", data={"phone": TO})
    assert_error(r, 400, "invalid_json")
    assert (await sim_state(partner, sid))["linked"] is False


# -- inbound -------------------------------------------------------------------------------------


async def test_inbound_message(partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    ids = set()
    for sender in ("919812345678", "+44 7911 123456", "whatsapp:+919812345678"):
        r = await partner.post(f"/sim/devices/{sid}/inbound",
                               json={"from": sender, "message": "hello gateway"})
        assert r.status_code == 200, r.text
        assert r.json()["type"] == "success"
        assert r.json()["message_id"].startswith("3EB0")
        ids.add(r.json()["message_id"])
    assert len(ids) == 3
    assert (await partner.status(sid))["status"] == "connected"


BAD_INBOUND_BODIES: list[tuple[dict[str, Any], int, str, str]] = [
    ({"message": "hi"}, 400, "missing_field", "from"),
    ({"from": "919812345678"}, 400, "missing_field", "message"),
    ({"from": "919812345678", "message": ""}, 400, "missing_field", "message"),
    ({"from": "12", "message": "hi"}, 422, "invalid_phone", "from"),
    ({"from": "919812345678", "message": ["hi"]}, 400, "invalid_field", "message"),
]


async def test_inbound_rejects_bad_fields(partner: Partner, subtests: pytest.Subtests) -> None:
    device = await partner.linked_device()
    for body, status, code, field in BAD_INBOUND_BODIES:
        with subtests.test(body=body):
            r = await partner.post(f"/sim/devices/{device['session_id']}/inbound", json=body)
            assert_error(r, status, code, field)


async def test_inbound_to_a_device_that_is_not_connected_is_409(partner: Partner) -> None:
    device = await partner.create_device()
    r = await partner.post(f"/sim/devices/{device['session_id']}/inbound",
                           json={"from": "919812345678", "message": "hi"})
    assert_error(r, 409, "simulator_refused")


# -- sent ----------------------------------------------------------------------------------------


async def test_sent_lists_what_whatsapp_received_in_order(gateway: Gateway,
                                                          partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    assert (await partner.get(f"/sim/devices/{sid}/sent")).json() == {
        "type": "success", "messages": []}
    ids = []
    for to, text in (("919812345678", "one"), (TO, "two"), ("447911123456", "three")):
        r = await gateway.client.post(device["send_url"], json={"to": to, "message": text})
        assert r.status_code == 200, r.text
        ids.append(r.json()["message_id"])
    messages = (await partner.get(f"/sim/devices/{sid}/sent")).json()["messages"]
    assert [(m["message_id"], m["to"], m["message"]) for m in messages] == [
        (ids[0], "919812345678", "one"), (ids[1], TO, "two"), (ids[2], "447911123456", "three")]
    assert all(m["kind"] == "text" and m["attempts"] == 1 for m in messages)
    assert messages[0]["at"] <= messages[1]["at"] <= messages[2]["at"] <= time.time()

    # another device's list is its own
    other = await partner.create_device(name="other")
    assert (await partner.get(f"/sim/devices/{other['session_id']}/sent")).json()[
        "messages"] == []


# -- unlink, ban, drop ---------------------------------------------------------------------------


async def test_unlink_from_the_phone_logs_the_device_out(gateway: Gateway,
                                                         partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    r = await partner.post(f"/sim/devices/{sid}/unlink")
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "success"
    await partner.wait_status(sid, "logged_out")
    st = await partner.status(sid)
    assert st["phone"] is None
    assert st["last_error"]
    assert "removed" in st["last_error"]
    assert (await sim_state(partner, sid))["linked"] is False
    r = await gateway.client.post(device["send_url"], json={"to": TO, "message": "x"})
    assert_not_linked(r, "logged_out")
    # it needs a new QR, which the QR route starts
    r = await partner.get(f"/partner/devices/{sid}/qr")
    assert r.json()["type"] == "pending"
    await partner.link(sid)


async def test_unlink_of_a_device_that_is_not_linked_changes_nothing(partner: Partner) -> None:
    device = await partner.create_device()
    sid = device["session_id"]
    await wait_qr(partner, sid)
    r = await partner.post(f"/sim/devices/{sid}/unlink")
    assert r.headers["content-type"].startswith("application/json")
    assert r.status_code in (200, 409), r.text
    assert (await partner.status(sid))["status"] == "pairing"


async def test_ban_then_the_ban_expires(gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    t0 = time.time()
    r = await partner.post(f"/sim/devices/{sid}/ban", json={"seconds": 0.6})
    assert r.status_code == 200, r.text
    assert r.json()["seconds"] == 0.6
    await partner.wait_status(sid, "banned")
    st = await partner.status(sid)
    assert st["last_error"] == "temporarily banned"
    assert st["phone"] == TO  # still linked
    state = await sim_state(partner, sid)
    assert t0 + 0.5 <= state["banned_until"] <= time.time() + 0.7
    assert (await partner.get(f"/partner/devices/{sid}/qr")).json()["type"] == "pending"
    # the supervisor retries when the ban ends, with no new scan
    await partner.wait_status(sid, "connected", timeout=5)
    r = await gateway.client.post(device["send_url"], json={"to": TO, "message": "x"})
    assert r.status_code == 200, r.text


async def test_ban_defaults_to_an_hour(partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    r = await partner.post(f"/sim/devices/{sid}/ban")
    assert r.status_code == 200, r.text
    assert r.json()["seconds"] == 3600
    await partner.wait_status(sid, "banned")


async def test_ban_rejects_bad_seconds(partner: Partner, subtests: pytest.Subtests) -> None:
    device = await partner.linked_device()
    for seconds in (0, -1, "60", True, None, [60]):
        with subtests.test(seconds=seconds):
            r = await partner.post(f"/sim/devices/{device['session_id']}/ban",
                                   json={"seconds": seconds})
            assert_error(r, 400, "invalid_field", "seconds")
    assert (await partner.status(device["session_id"]))["status"] == "connected"


async def test_ban_errors(partner: Partner) -> None:
    device = await partner.linked_device()
    r = await partner.post(f"/sim/devices/{device['session_id']}/ban", content=b"seconds=5",
                           headers={"content-type": "application/json"})
    assert_error(r, 400, "invalid_json")
    unlinked = await partner.create_device()
    r = await partner.post(f"/sim/devices/{unlinked['session_id']}/ban", json={"seconds": 5})
    assert_error(r, 409, "simulator_refused")


@pytest.fixture
async def slow_reconnect(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await start_gateway(tmp_path / "data",
                             env={"WAGATE_SIMULATED_RECONNECT_SECONDS": "0.5"})
    try:
        yield gw
    finally:
        await gw.stop()


async def test_drop_disconnects_then_reconnects_by_itself(slow_reconnect: Gateway) -> None:
    gw = slow_reconnect
    partner = await gw.register()
    device = await partner.linked_device()
    sid = device["session_id"]
    r = await partner.post(f"/sim/devices/{sid}/drop")
    assert r.status_code == 200, r.text
    await partner.wait_status(sid, "disconnected")
    st = await partner.status(sid)
    assert st["last_error"] == "connection dropped"
    assert st["phone"] == TO
    # dropping again while it is down is refused
    assert_error(await partner.post(f"/sim/devices/{sid}/drop"), 409, "simulator_refused")
    await partner.wait_status(sid, "connected")
    assert (await partner.status(sid))["last_error"] is None
    r = await gw.client.post(device["send_url"], json={"to": TO, "message": "x"})
    assert r.status_code == 200, r.text


async def test_drop_of_a_device_that_is_not_connected_is_409(partner: Partner) -> None:
    device = await partner.create_device()
    r = await partner.post(f"/sim/devices/{device['session_id']}/drop")
    assert_error(r, 409, "simulator_refused")


# -- faults --------------------------------------------------------------------------------------


@pytest.fixture
async def one_attempt(tmp_path: Path) -> AsyncIterator[Gateway]:
    """A gateway whose outbox gives up on a message WhatsApp refused once."""
    gw = await start_gateway(tmp_path / "data", env={"WAGATE_DELIVERY_MAX_ATTEMPTS": "1"})
    try:
        yield gw
    finally:
        await gw.stop()


async def test_faults_are_echoed_and_per_device(one_attempt: Gateway) -> None:
    gateway = one_attempt
    partner = await gateway.register()
    a = await partner.linked_device(name="a")
    b = await partner.linked_device(name="b")
    r = await partner.post(f"/sim/devices/{a['session_id']}/faults",
                           json={"send_failure_rate": 1})
    assert r.status_code == 200, r.text
    assert r.json()["faults"] == {"connect_failure_rate": 0.0, "send_failure_rate": 1.0,
                                  "send_delay": 0.0}
    r = await gateway.client.post(a["send_url"], json={"to": TO, "message": "x"})
    assert assert_error(r, 502, str(r.json().get("code")))["code"] in SEND_FAILED_CODES
    r = await gateway.client.post(b["send_url"], json={"to": TO, "message": "x"})
    assert r.status_code == 200, r.text


async def test_send_delay_fault(gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    r = await partner.post(f"/sim/devices/{device['session_id']}/faults",
                           json={"send_delay": 0.3})
    assert r.status_code == 200, r.text
    t0 = time.monotonic()
    r = await gateway.client.post(device["send_url"], json={"to": TO, "message": "slow"})
    assert r.status_code == 200, r.text
    assert time.monotonic() - t0 >= 0.3


BAD_FAULTS: list[tuple[dict[str, Any], str]] = [
    ({"send_failure_rate": 1.5}, "send_failure_rate"),
    ({"send_failure_rate": -0.1}, "send_failure_rate"),
    ({"send_failure_rate": "1"}, "send_failure_rate"),
    ({"send_failure_rate": True}, "send_failure_rate"),
    ({"send_failure_rate": None}, "send_failure_rate"),
    ({"connect_failure_rate": 2}, "connect_failure_rate"),
    ({"connect_failure_rate": [0.5]}, "connect_failure_rate"),
    ({"send_delay": -1}, "send_delay"),
    ({"send_delay": 3601}, "send_delay"),
    ({"send_delay": "slow"}, "send_delay"),
]


async def test_faults_validation(gateway: Gateway, partner: Partner,
                                 subtests: pytest.Subtests) -> None:
    device = await partner.linked_device()
    url = f"/sim/devices/{device['session_id']}/faults"
    for body, field in BAD_FAULTS:
        with subtests.test(body=body):
            assert_error(await partner.post(url, json=body), 400, "invalid_field", field)
    for content in (b"", b"send_failure_rate=1", b"[1]"):
        with subtests.test(content=content):
            r = await partner.post(url, content=content,
                                   headers={"content-type": "application/json"})
            assert_error(r, 400, "invalid_json")
    # none of them took effect
    r = await gateway.client.post(device["send_url"], json={"to": TO, "message": "x"})
    assert r.status_code == 200, r.text


# -- unknown session ids -------------------------------------------------------------------------


async def test_unknown_session_is_404_on_every_sim_route(partner: Partner) -> None:
    sim = "/sim/devices/wa_0000000000000000"
    for method, path, body in [
            ("GET", sim, None), ("POST", f"{sim}/scan", {"phone": TO}),
            ("POST", f"{sim}/inbound", {"from": TO, "message": "x"}), ("GET", f"{sim}/sent", None),
            ("POST", f"{sim}/unlink", None), ("POST", f"{sim}/ban", {"seconds": 5}),
            ("POST", f"{sim}/drop", None), ("POST", f"{sim}/faults", {})]:
        kw: dict[str, Any] = {} if body is None else {"json": body}
        r = await partner.client.request(method, path, headers=partner.headers, **kw)
        assert_error(r, 404, "device_not_found")


# -- the operator's `wagate sim scan` --------------------------------------------------------------


async def test_admin_sim_scan(gateway: Gateway, partner: Partner) -> None:
    device = await partner.create_device()
    sid = device["session_id"]
    url = f"/admin/sim/devices/{sid}/scan"
    assert_error(await gateway.client.post(url, json={"phone": TO}), 401,
                 "invalid_operator_token")
    assert_error(await gateway.client.post(url, json={"phone": TO},
                                           headers={"x-operator-token": partner.key}),
                 401, "invalid_operator_token")
    vault = TokenVault.load_or_create(Path(gateway.config.storage.data_dir))
    headers = {"x-operator-token": operator_token(vault)}
    assert_error(await gateway.client.post("/admin/sim/devices/wa_0000000000000000/scan",
                                           json={"phone": TO}, headers=headers),
                 404, "device_not_found")
    assert_error(await gateway.client.post(url, json={"phone": "12"}, headers=headers), 422,
                 "invalid_phone", "phone")
    await wait_qr(partner, sid)
    r = await gateway.client.post(url, json={"phone": TO}, headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["jid"].startswith(f"{TO}:")
    await partner.wait_status(sid, "connected")
    assert_error(await gateway.client.post(url, json={"phone": TO}, headers=headers), 409,
                 "simulator_refused")
