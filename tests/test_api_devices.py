"""Devices: create, QR (PNG decoded with zbar), status, pairing code, restart, logout,
rotate-token, delete; and the operator's /admin QR route that `wagate qr` uses."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from pyzbar.pyzbar import decode

from gateway.operator import operator_token
from gateway.tokens import TokenVault, new_token
from tests.conftest import Gateway, Partner, start_gateway, wait_for
from tests.test_api_partners import assert_error, assert_not_linked

DATA_URL = "data:image/png;base64,"
PAIR_CODE = re.compile(r"^[1-9A-HJ-NP-TV-Z]{4}-[1-9A-HJ-NP-TV-Z]{4}$")  # whatsmeow's alphabet


def decode_qr(data_url: str) -> str:
    """What a standard QR decoder (zbar) reads from the API's PNG data URL."""
    assert data_url.startswith(DATA_URL), data_url[:40]
    png = base64.b64decode(data_url[len(DATA_URL):], validate=True)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    found = decode(image)
    assert len(found) == 1, found
    text: str = found[0].data.decode()
    return text


async def sim_qr(partner: Partner, session_id: str) -> str | None:
    r = await partner.get(f"/sim/devices/{session_id}")
    assert r.status_code == 200, r.text
    qr: str | None = r.json()["qr"]
    return qr


async def api_qr_matches_sim(partner: Partner, session_id: str) -> str:
    """Fetch /qr between two reads of the simulator's current code; when the code did not rotate
    in between, the PNG must decode to exactly that code. Returns the code."""
    for _ in range(100):
        before = await sim_qr(partner, session_id)
        r = await partner.get(f"/partner/devices/{session_id}/qr")
        assert r.status_code == 200, r.text
        after = await sim_qr(partner, session_id)
        body = r.json()
        if before is not None and before == after and body["type"] == "success":
            assert set(body) == {"type", "qr", "expires_in"}
            assert 0 <= body["expires_in"] <= 0.6
            assert decode_qr(body["qr"]) == before
            return before
        await asyncio.sleep(0.02)
    raise AssertionError("never saw a stable QR code")


@pytest.fixture
async def short_qr(tmp_path: Path) -> AsyncIterator[Partner]:
    """A partner on a gateway whose pairing attempts show one QR code for 0.5 s."""
    gw = await start_gateway(tmp_path / "short", env={"WAGATE_SIMULATED_QR_CODES": "1",
                                                      "WAGATE_SIMULATED_QR_FIRST_SECONDS": "0.5"})
    try:
        yield await gw.register()
    finally:
        await gw.stop()


def parse_iso(text: str) -> float:
    assert text.endswith("Z"), text
    return datetime.fromisoformat(text).astimezone(UTC).timestamp()


# -- create --------------------------------------------------------------------------------------


async def test_create_device(gateway: Gateway, partner: Partner) -> None:
    user = await partner.create_user()
    r = await partner.post("/partner/devices", json={"device_name": "John iPhone"},
                           headers={"x-user-token": user})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["type"] == "success"
    assert re.fullmatch(r"wa_[0-9a-f]{16}", body["session_id"])
    assert body["device_token"].startswith("dt_")
    assert len(body["device_token"]) >= 3 + 22
    assert body["send_url"] == f"{gateway.url}/wa/{body['device_token']}/send"
    assert body["qr_url"] == f"{gateway.url}/partner/devices/{body['session_id']}/qr"
    assert body["device_name"] == "John iPhone"
    assert body["status"] in ("new", "pairing")

    # the qr_url is a working URL for the partner
    r = await gateway.client.get(body["qr_url"], headers=partner.headers)
    assert r.status_code == 200, r.text
    assert r.json()["type"] in ("pending", "success")


async def test_devices_get_distinct_ids_and_tokens(partner: Partner) -> None:
    user = await partner.create_user()
    a = await partner.create_device(user, name="same name")
    b = await partner.create_device(user, name="same name")
    assert a["session_id"] != b["session_id"]
    assert a["device_token"] != b["device_token"]


BAD_DEVICE_FIELDS: list[tuple[dict[str, Any], str, str]] = [
    ({}, "device_name", "missing_field"),
    ({"device_name": ""}, "device_name", "missing_field"),
    ({"device_name": "   "}, "device_name", "missing_field"),
    ({"name": "John iPhone"}, "device_name", "missing_field"),
    ({"device_name": ["x"]}, "device_name", "invalid_field"),
    ({"device_name": "x" * 101}, "device_name", "invalid_field"),
]


async def test_create_device_rejects_bad_input(partner: Partner,
                                               subtests: pytest.Subtests) -> None:
    user = await partner.create_user()
    for body, field, code in BAD_DEVICE_FIELDS:
        with subtests.test(body=str(body)[:60]):
            r = await partner.post("/partner/devices", json=body, headers={"x-user-token": user})
            assert_error(r, 400, code, field)
    for content in (b"", b"device_name=x", b"[]", b"{"):
        with subtests.test(content=content):
            r = await partner.post("/partner/devices", content=content,
                                   headers={"x-user-token": user,
                                            "content-type": "application/json"})
            assert_error(r, 400, "invalid_json")
    assert (await partner.get(f"/partner/users/{user}/devices")).json()["devices"] == []


async def test_create_device_needs_a_known_user_token(partner: Partner) -> None:
    r = await partner.post("/partner/devices", json={"device_name": "x"})
    assert_error(r, 401, "missing_user_token")
    r = await partner.post("/partner/devices", json={"device_name": "x"},
                           headers={"x-user-token": ""})
    assert_error(r, 401, "missing_user_token")
    for token in ("pu_garbage", "garbage", new_token("pu"), partner.key):
        r = await partner.post("/partner/devices", json={"device_name": "x"},
                               headers={"x-user-token": token})
        assert_error(r, 404, "user_not_found")
    # the user is checked before the body
    r = await partner.post("/partner/devices", content=b"nope",
                           headers={"x-user-token": new_token("pu")})
    assert_error(r, 404, "user_not_found")
    assert (await partner.get("/partner/me")).json()["stats"]["devices"] == {"total": 0}


# -- unknown session ids -------------------------------------------------------------------------


async def test_unknown_session_id_is_404_on_every_device_route(
        partner: Partner, subtests: pytest.Subtests) -> None:
    for session_id in ("wa_0000000000000000", "nope", "wa_", "%20"):
        dev = f"/partner/devices/{session_id}"
        for method, path, body in [
                ("GET", f"{dev}/qr", None), ("GET", f"{dev}/status", None),
                ("POST", f"{dev}/pair", {"phone": "919876543210"}),
                ("POST", f"{dev}/restart", None), ("POST", f"{dev}/logout", None),
                ("POST", f"{dev}/rotate-token", None), ("DELETE", dev, None)]:
            with subtests.test(method=method, path=path):
                kw: dict[str, Any] = {} if body is None else {"json": body}
                r = await partner.client.request(method, path, headers=partner.headers, **kw)
                assert_error(r, 404, "device_not_found")


# -- QR ------------------------------------------------------------------------------------------


async def test_qr_is_pending_until_the_first_code_then_a_png(tmp_path: Path) -> None:
    # a slow handshake makes the "not ready yet" window wide enough to observe every time
    gw = await start_gateway(tmp_path / "data", env={"WAGATE_SIMULATED_CONNECT_SECONDS": "0.3"})
    try:
        partner = await gw.register()
        device = await partner.create_device()
        sid = device["session_id"]
        r = await partner.get(f"/partner/devices/{sid}/qr")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["type"] == "pending"
        assert body["message"] == "QR not ready, retry in 3s"
        assert body["status"] == "pairing"
        assert r.headers["retry-after"] == "3"
        assert (await partner.status(sid))["status"] == "pairing"

        async def ready() -> bool:
            return (await partner.get(f"/partner/devices/{sid}/qr")).json()["type"] == "success"

        await wait_for(ready)
        await api_qr_matches_sim(partner, sid)
    finally:
        await gw.stop()


async def test_qr_png_decodes_to_the_current_code_rotates_expires_and_restarts(
        partner: Partner) -> None:
    device = await partner.create_device()
    sid = device["session_id"]

    async def shown() -> str | None:
        return await sim_qr(partner, sid)

    await wait_for(shown)
    first = await api_qr_matches_sim(partner, sid)
    assert first.startswith("2@")

    async def rotated() -> bool:
        code = await sim_qr(partner, sid)
        return code is not None and code != first

    await wait_for(rotated, timeout=3)
    second = await api_qr_matches_sim(partner, sid)
    assert second != first
    # whatsmeow's format: ref,noise key,identity key,adv secret; only the ref rotates
    assert second.split(",")[1:] == first.split(",")[1:]
    assert second.split(",")[0] != first.split(",")[0]
    assert (await partner.status(sid))["status"] == "pairing"

    # every code expires (0.6 s + 5 x 0.3 s): the attempt times out and the device is unlinked
    await partner.wait_status(sid, "unlinked", timeout=6)
    status = await partner.status(sid)
    assert status["last_error"]
    assert "expired" in status["last_error"]
    assert await sim_qr(partner, sid) is None

    # asking for the QR again restarts pairing: pending first, then a fresh code
    r = await partner.get(f"/partner/devices/{sid}/qr")
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "pending"
    assert r.json()["status"] == "pairing"
    await wait_for(shown)
    third = await api_qr_matches_sim(partner, sid)
    assert third not in (first, second)

    # scanning it links the device; the QR route then says so
    r = await partner.post(f"/sim/devices/{sid}/scan", json={"phone": "919876543210"})
    assert r.status_code == 200, r.text
    await partner.wait_status(sid, "connected")
    r = await partner.get(f"/partner/devices/{sid}/qr")
    assert r.json() == {"type": "connected", "phone": "919876543210"}
    assert await sim_qr(partner, sid) is None


async def test_qr_of_a_linked_but_offline_device_does_not_restart_pairing(
        partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    r = await partner.post(f"/sim/devices/{sid}/ban", json={"seconds": 60})
    assert r.status_code == 200, r.text
    await partner.wait_status(sid, "banned")
    r = await partner.get(f"/partner/devices/{sid}/qr")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "pending"
    assert body["status"] == "banned"
    assert "linked" in body["message"]
    assert (await partner.status(sid))["status"] == "banned"
    assert await sim_qr(partner, sid) is None


# -- status --------------------------------------------------------------------------------------


async def test_status_fields_through_the_life_of_a_device(partner: Partner) -> None:
    t0 = time.time()
    device = await partner.create_device(name="John iPhone")
    sid = device["session_id"]
    st = await partner.status(sid)
    assert st["type"] == "success"
    assert st["status"] in ("new", "pairing")
    assert st["session_id"] == sid
    assert st["device_name"] == "John iPhone"
    assert st["send_url"] == device["send_url"]
    assert st["qr_url"] == device["qr_url"]
    assert st["phone"] is None
    assert st["last_error"] is None
    assert t0 - 2 <= parse_iso(st["since"]) <= time.time() + 1
    assert t0 - 2 <= parse_iso(st["created_at"]) <= time.time() + 1

    await partner.link(sid, phone="+44 7911 123456")
    st = await partner.status(sid)
    assert st["status"] == "connected"
    assert st["phone"] == "447911123456"
    assert st["last_error"] is None
    assert st["send_url"] == device["send_url"]

    r = await partner.post(f"/sim/devices/{sid}/unlink")
    assert r.status_code == 200, r.text
    await partner.wait_status(sid, "logged_out")
    st = await partner.status(sid)
    assert st["phone"] is None
    assert st["last_error"]


# -- pairing code --------------------------------------------------------------------------------


async def test_pair_by_phone_number_then_enter_the_code(partner: Partner) -> None:
    device = await partner.create_device()
    sid = device["session_id"]
    r = await partner.post(f"/partner/devices/{sid}/pair", json={"phone": "+91 98765 43210"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "success"
    assert body["phone"] == "919876543210"
    code = body["pairing_code"]
    assert PAIR_CODE.fullmatch(code), code
    assert "Link with phone number" in body["message"]

    state = (await partner.get(f"/sim/devices/{sid}")).json()
    assert state["pairing_code"] == code.replace("-", "")

    # a wrong code, or the right code from another phone, does not link it
    wrong = "1111-1111" if code != "1111-1111" else "2222-2222"
    r = await partner.post(f"/sim/devices/{sid}/scan",
                           json={"phone": "919876543210", "code": wrong})
    assert_error(r, 409, "simulator_refused")
    r = await partner.post(f"/sim/devices/{sid}/scan", json={"phone": "919812345678",
                                                              "code": code})
    assert_error(r, 409, "simulator_refused")
    assert (await partner.status(sid))["status"] == "pairing"

    r = await partner.post(f"/sim/devices/{sid}/scan", json={"phone": "919876543210",
                                                              "code": code.lower()})
    assert r.status_code == 200, r.text
    await partner.wait_status(sid, "connected")
    assert (await partner.status(sid))["phone"] == "919876543210"


async def test_pair_after_the_qr_codes_expired_restarts_pairing(short_qr: Partner) -> None:
    partner = short_qr
    device = await partner.create_device()
    sid = device["session_id"]
    await partner.wait_status(sid, "unlinked", timeout=6)
    r = await partner.post(f"/partner/devices/{sid}/pair", json={"phone": "919876543210"})
    assert r.status_code == 200, r.text
    r = await partner.post(f"/sim/devices/{sid}/scan",
                           json={"phone": "919876543210", "code": r.json()["pairing_code"]})
    assert r.status_code == 200, r.text
    await partner.wait_status(sid, "connected")


BAD_PAIR_BODIES: list[tuple[dict[str, Any], int, str]] = [
    ({"phone": "12345"}, 422, "invalid_phone"),
    ({"phone": "not a phone"}, 422, "invalid_phone"),
    ({"phone": "+1 555 0100"}, 422, "invalid_phone"),
    ({"phone": "0098765432100000000000"}, 422, "invalid_phone"),
    ({}, 400, "missing_field"),
    ({"phone": ""}, 400, "missing_field"),
    ({"phone": ["919876543210"]}, 400, "invalid_field"),
    ({"phone": "9" * 41}, 400, "invalid_field"),
]


async def test_pair_rejects_a_bad_phone(partner: Partner, subtests: pytest.Subtests) -> None:
    device = await partner.create_device()
    url = f"/partner/devices/{device['session_id']}/pair"
    for body, status, code in BAD_PAIR_BODIES:
        with subtests.test(body=str(body)[:60]):
            assert_error(await partner.post(url, json=body), status, code, "phone")
    with subtests.test("a form body is not JSON"):
        assert_error(await partner.post(url, data={"phone": "919876543210"}), 400,
                     "invalid_json")
    assert (await partner.get(f"/sim/devices/{device['session_id']}")).json()[
        "pairing_code"] is None


async def test_pair_on_a_linked_device_is_409(partner: Partner) -> None:
    device = await partner.linked_device()
    r = await partner.post(f"/partner/devices/{device['session_id']}/pair",
                           json={"phone": "919876543210"})
    body = assert_error(r, 409, "already_linked")
    assert body["status"] == "connected"
    assert "connected" in body["message"]
    assert (await partner.status(device["session_id"]))["status"] == "connected"


# -- restart -------------------------------------------------------------------------------------


async def test_restart_a_connected_device_reconnects(partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    r = await partner.post(f"/partner/devices/{sid}/restart")
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "success"
    assert r.json()["message"] == "Session restarted"
    assert r.json()["status"] in ("connecting", "connected")
    await partner.wait_status(sid, "connected")
    state = (await partner.get(f"/sim/devices/{sid}")).json()
    assert state["session"] == "connected"
    assert state["linked"] is True


async def test_restart_with_connect_failures_backs_off_and_recovers(partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    r = await partner.post(f"/sim/devices/{sid}/faults", json={"connect_failure_rate": 1})
    assert r.status_code == 200, r.text
    r = await partner.post(f"/partner/devices/{sid}/restart")
    assert r.status_code == 200, r.text
    await partner.wait_status(sid, "disconnected")
    st = await partner.status(sid)
    assert st["last_error"]
    assert "connect failure" in st["last_error"]
    assert st["phone"] == "919876543210"  # still linked: no new scan needed
    r = await partner.post(f"/sim/devices/{sid}/faults", json={})
    assert r.status_code == 200, r.text
    await partner.wait_status(sid, "connected")
    assert (await partner.status(sid))["last_error"] is None


async def test_restart_an_expired_device_starts_pairing_again(short_qr: Partner) -> None:
    partner = short_qr
    device = await partner.create_device()
    sid = device["session_id"]
    await partner.wait_status(sid, "unlinked", timeout=6)
    r = await partner.post(f"/partner/devices/{sid}/restart")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "pairing"

    async def shown() -> str | None:
        return await sim_qr(partner, sid)

    await wait_for(shown)
    await api_qr_matches_sim(partner, sid)


# -- logout --------------------------------------------------------------------------------------


async def test_logout_then_send_is_409_and_qr_restarts_pairing(gateway: Gateway,
                                                               partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    r = await partner.post(f"/partner/devices/{sid}/logout")
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "success"
    assert r.json()["status"] == "logged_out"
    st = await partner.status(sid)
    assert st["status"] == "logged_out"
    assert st["phone"] is None
    state = (await partner.get(f"/sim/devices/{sid}")).json()
    assert state["linked"] is False

    r = await gateway.client.post(device["send_url"], json={"to": "919812345678",
                                                            "message": "hello"})
    assert_not_linked(r, "logged_out")

    # logging out again: not linked
    r = await partner.post(f"/partner/devices/{sid}/logout")
    body = assert_error(r, 409, "device_not_linked")
    assert body["status"] == "logged_out"

    # a new QR links it again, and the same send URL works
    r = await partner.get(f"/partner/devices/{sid}/qr")
    assert r.json()["type"] == "pending"
    await partner.link(sid, phone="919812345678")
    assert (await partner.status(sid))["phone"] == "919812345678"
    r = await gateway.client.post(device["send_url"], json={"to": "919876543210",
                                                            "message": "back"})
    assert r.status_code == 200, r.text


async def test_logout_of_an_unlinked_device_is_409(partner: Partner) -> None:
    device = await partner.create_device()
    r = await partner.post(f"/partner/devices/{device['session_id']}/logout")
    body = assert_error(r, 409, "device_not_linked")
    assert body["status"] in ("new", "pairing")
    assert body["status"] in body["message"]


# -- rotate-token --------------------------------------------------------------------------------


async def test_rotate_token_new_url_works_and_old_one_during_grace(gateway: Gateway,
                                                                   partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    old_url = device["send_url"]
    r = await partner.post(f"/partner/devices/{sid}/rotate-token")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "success"
    new_token_ = body["device_token"]
    assert new_token_.startswith("dt_")
    assert new_token_ != device["device_token"]
    assert body["send_url"] == f"{gateway.url}/wa/{new_token_}/send"
    grace = parse_iso(body["previous_valid_until"]) - time.time()
    assert 86400 - 5 <= grace <= 86400 + 1  # the documented default

    st = await partner.status(sid)
    assert st["send_url"] == body["send_url"]
    user_devices = await partner.get(f"/partner/users/{device['user_token']}/devices")
    assert user_devices.json()["devices"][0]["send_url"] == body["send_url"]

    for url in (body["send_url"], old_url):
        r = await gateway.client.post(url, json={"to": "919812345678", "message": url[-10:]})
        assert r.status_code == 200, r.text
        assert r.json()["device"] == "John iPhone"
    sent = (await partner.get(f"/sim/devices/{sid}/sent")).json()["messages"]
    assert len(sent) == 2


async def test_rotate_token_without_grace_kills_the_old_url_at_once(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path / "data",
                             env={"WAGATE_SESSIONS_TOKEN_GRACE_SECONDS": "0"})
    try:
        partner = await gw.register()
        device = await partner.linked_device()
        r = await partner.post(f"/partner/devices/{device['session_id']}/rotate-token")
        assert r.status_code == 200, r.text
        new_url = r.json()["send_url"]
        r = await gw.client.post(device["send_url"], json={"to": "919812345678", "message": "x"})
        assert_error(r, 404, "device_not_found")
        r = await gw.client.get(device["send_url"], params={"to": "919812345678",
                                                            "message": "x"})
        assert_error(r, 404, "device_not_found")
        r = await gw.client.post(new_url, json={"to": "919812345678", "message": "x"})
        assert r.status_code == 200, r.text
    finally:
        await gw.stop()


async def test_rotate_token_works_on_an_unlinked_device(partner: Partner) -> None:
    device = await partner.create_device()
    r = await partner.post(f"/partner/devices/{device['session_id']}/rotate-token")
    assert r.status_code == 200, r.text
    assert r.json()["device_token"] != device["device_token"]


# -- delete --------------------------------------------------------------------------------------


def sim_accounts(gateway: Gateway) -> set[str]:
    """The simulated WhatsApp's stored credentials (its `simulated.db`, like neonize's store)."""
    db = sqlite3.connect(Path(gateway.config.storage.data_dir) / "simulated.db")
    try:
        return {row[0] for row in db.execute("SELECT key FROM accounts")}
    finally:
        db.close()


async def test_delete_kills_the_send_url_at_once_and_forgets_credentials(
        gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    r = await partner.post(f"/partner/devices/{sid}/rotate-token")
    assert r.status_code == 200, r.text
    new_url = r.json()["send_url"]
    assert sid in sim_accounts(gateway)

    r = await partner.delete(f"/partner/devices/{sid}")
    assert r.status_code == 200, r.text
    assert r.json() == {"type": "success", "message": "Device removed", "session_id": sid}

    for url in (new_url, device["send_url"]):  # the current URL and the one still in grace
        r = await gateway.client.post(url, json={"to": "919812345678", "message": "x"})
        assert_error(r, 404, "device_not_found")
        r = await gateway.client.get(url, params={"to": "919812345678", "message": "x"})
        assert_error(r, 404, "device_not_found")
    assert_error(await partner.get(f"/partner/devices/{sid}/status"), 404, "device_not_found")
    assert_error(await partner.get(f"/partner/devices/{sid}/qr"), 404, "device_not_found")
    assert_error(await partner.get(f"/sim/devices/{sid}"), 404, "device_not_found")
    assert_error(await partner.delete(f"/partner/devices/{sid}"), 404, "device_not_found")
    assert_error(await partner.post(f"/partner/devices/{sid}/rotate-token"), 404,
                 "device_not_found")

    assert sid not in sim_accounts(gateway)
    assert (await partner.get("/partner/me")).json()["stats"]["devices"] == {"total": 0}
    listing = await partner.get(f"/partner/users/{device['user_token']}/devices")
    assert listing.json()["devices"] == []


async def test_delete_a_pairing_device(partner: Partner) -> None:
    device = await partner.create_device()
    sid = device["session_id"]
    r = await partner.delete(f"/partner/devices/{sid}")
    assert r.status_code == 200, r.text
    assert_error(await partner.get(f"/partner/devices/{sid}/status"), 404, "device_not_found")
    users = (await partner.get("/partner/users")).json()["users"]
    assert users[0]["devices"] == 0


# -- the operator's QR route (`wagate qr`) --------------------------------------------------------


def operator_headers(gateway: Gateway) -> dict[str, str]:
    vault = TokenVault.load_or_create(Path(gateway.config.storage.data_dir))
    return {"x-operator-token": operator_token(vault)}


async def test_admin_qr_gives_the_raw_code(gateway: Gateway, partner: Partner) -> None:
    device = await partner.create_device()
    sid = device["session_id"]
    headers = operator_headers(gateway)
    for _ in range(100):
        before = await sim_qr(partner, sid)
        r = await gateway.client.get(f"/admin/devices/{sid}/qr", params={"wait": 2},
                                     headers=headers)
        assert r.status_code == 200, r.text
        if before is not None and before == await sim_qr(partner, sid):
            assert r.json()["type"] == "success"
            assert r.json()["code"] == before
            break
    else:
        raise AssertionError("never saw a stable QR code")

    await partner.link(sid)
    r = await gateway.client.get(f"/admin/devices/{sid}/qr", headers=headers)
    assert r.json() == {"type": "connected", "phone": "919876543210"}


async def test_admin_qr_errors(gateway: Gateway, partner: Partner) -> None:
    device = await partner.create_device()
    sid = device["session_id"]
    assert_error(await gateway.client.get(f"/admin/devices/{sid}/qr"), 401,
                 "invalid_operator_token")
    for token in ("wrong", partner.key, new_token("op")):
        r = await gateway.client.get(f"/admin/devices/{sid}/qr",
                                     headers={"x-operator-token": token})
        assert_error(r, 401, "invalid_operator_token")
    headers = operator_headers(gateway)
    r = await gateway.client.get("/admin/devices/wa_0000000000000000/qr", headers=headers)
    assert_error(r, 404, "device_not_found")
    r = await gateway.client.get(f"/admin/devices/{sid}/qr", params={"wait": "soon"},
                                 headers=headers)
    assert_error(r, 400, "invalid_field")
