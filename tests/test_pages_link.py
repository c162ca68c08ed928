"""Device link pages: the partner API that makes and revokes them, the page, its live QR code
(server-sent events, polling), pairing by phone number, and what the page must never show."""

from __future__ import annotations

import asyncio
import io
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from pyzbar.pyzbar import decode

from gateway.tokens import new_token
from tests.conftest import Gateway, Partner, start_gateway, wait_for
from tests.test_api_partners import assert_error

PHONE = "919876543210"


@pytest.fixture
async def slow_qr(tmp_path: Path) -> AsyncIterator[Gateway]:
    """QR codes that stay put while a test looks at them."""
    gw = await start_gateway(tmp_path / "data", env={"WAGATE_SIMULATED_QR_FIRST_SECONDS": "60"})
    try:
        yield gw
    finally:
        await gw.stop()


async def make_link(partner: Partner, session_id: str, **body: Any) -> dict[str, Any]:
    r = await partner.post(f"/partner/devices/{session_id}/link", json=body or None)
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    return data


def path_of(link_url: str) -> str:
    return httpx.URL(link_url).path


def assert_page_headers(r: httpx.Response) -> None:
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-content-type-options"] == "nosniff"


def assert_missing_page(r: httpx.Response) -> None:
    assert r.status_code == 404, r.text
    assert_page_headers(r)
    assert "This link is not valid" in r.text
    assert "Traceback" not in r.text


async def test_link_lifecycle_create_open_revoke(gateway: Gateway, partner: Partner) -> None:
    device = await partner.create_device(name="Maria's phone")
    sid = device["session_id"]
    before = time.time()
    link = await make_link(partner, sid)
    assert link["type"] == "success"
    assert link["link_url"].startswith(f"{gateway.url}/link/lt_")
    expires = datetime.fromisoformat(link["expires_at"].replace("Z", "+00:00")).timestamp()
    assert abs(expires - (before + 86400)) < 5  # 24 hours by default
    token = path_of(link["link_url"]).rsplit("/", 1)[1]

    r = await gateway.client.get(path_of(link["link_url"]))
    assert r.status_code == 200, r.text
    assert_page_headers(r)
    assert "Maria&#39;s phone" in r.text
    assert "Link with phone number instead" in r.text
    assert "<script>" not in r.text
    assert "onclick" not in r.text
    # nothing of the partner's: no key, no device token, no send URL, no session id
    for secret in (partner.key, device["device_token"], device["send_url"], "/wa/", sid,
                   device["user_token"], "pk_", "dt_"):
        assert secret not in r.text, secret
    # the token itself is stored only as a hash
    db = sqlite3.connect(gateway.config.database_path)
    try:
        stored = [row[0] for row in db.execute("SELECT token_hash FROM link_tokens")]
    finally:
        db.close()
    assert len(stored) == 1
    assert token not in stored[0]

    state = await gateway.client.get(f"{path_of(link['link_url'])}/state")
    assert state.status_code == 200
    assert state.json()["device_name"] == "Maria's phone"
    assert partner.key not in state.text
    assert "send" not in state.text

    second = await make_link(partner, sid, expires_in=3600)
    r = await partner.delete(f"/partner/devices/{sid}/link")
    assert r.status_code == 200, r.text
    assert r.json()["revoked"] == 2
    for url in (link["link_url"], second["link_url"]):
        assert_missing_page(await gateway.client.get(path_of(url)))
        assert_error(await gateway.client.get(f"{path_of(url)}/state"), 404, "link_not_found")
        assert_error(await gateway.client.get(f"{path_of(url)}/events"), 404, "link_not_found")
        assert_error(await gateway.client.post(f"{path_of(url)}/pair", json={"phone": PHONE}),
                     404, "link_not_found")
    # a new link after a revoke works
    third = await make_link(partner, sid)
    assert (await gateway.client.get(path_of(third["link_url"]))).status_code == 200


async def test_expired_link_is_a_404_page(gateway: Gateway, partner: Partner) -> None:
    device = await partner.create_device()
    link = await make_link(partner, device["session_id"], expires_in=60)
    assert (await gateway.client.get(path_of(link["link_url"]))).status_code == 200

    def expire() -> None:
        # in a thread: the in-process daemon shares this event loop and must keep committing
        db = sqlite3.connect(gateway.config.database_path)
        try:
            with db:
                db.execute("UPDATE link_tokens SET expires_at = ?", (time.time() - 1,))
        finally:
            db.close()

    await asyncio.to_thread(expire)
    assert_missing_page(await gateway.client.get(path_of(link["link_url"])))


async def test_unknown_malformed_and_deleted_device_links_are_404_pages(
        gateway: Gateway, partner: Partner) -> None:
    for token in (new_token("lt"), "lt_nope", partner.key, "x" * 300):
        assert_missing_page(await gateway.client.get(f"/link/{token}"))
    device = await partner.create_device()
    link = await make_link(partner, device["session_id"])
    r = await partner.delete(f"/partner/devices/{device['session_id']}")
    assert r.status_code == 200, r.text
    assert_missing_page(await gateway.client.get(path_of(link["link_url"])))


async def test_link_routes_are_partner_scoped(gateway: Gateway, partner: Partner) -> None:
    device = await partner.create_device()
    sid = device["session_id"]
    other = await gateway.register("Other", "other@example.com")
    for method in ("POST", "DELETE"):
        r = await other.client.request(method, f"/partner/devices/{sid}/link",
                                       headers=other.headers)
        assert_error(r, 404, "device_not_found")
        r = await gateway.client.request(method, f"/partner/devices/{sid}/link")
        assert_error(r, 401, "missing_api_key")
    # the other partner's revoke did not touch this partner's link
    link = await make_link(partner, sid)
    await other.client.delete(f"/partner/devices/{sid}/link", headers=other.headers)
    assert (await gateway.client.get(path_of(link["link_url"]))).status_code == 200


@pytest.mark.parametrize("value", [0, 59, 7 * 86400 + 1, "3600", True, None])
async def test_expires_in_is_checked(gateway: Gateway, partner: Partner, value: Any) -> None:
    device = await partner.create_device()
    if value is None:  # explicit null means the default
        r = await partner.post(f"/partner/devices/{device['session_id']}/link",
                               json={"expires_in": None})
        assert r.status_code == 201, r.text
        return
    r = await partner.post(f"/partner/devices/{device['session_id']}/link",
                           json={"expires_in": value})
    assert_error(r, 400, "invalid_field", field="expires_in")


async def read_events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    event = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:])


async def test_events_stream_a_new_qr_as_codes_rotate_then_connected(
        gateway: Gateway, partner: Partner) -> None:
    device = await partner.create_device()
    sid = device["session_id"]
    link = await make_link(partner, sid)
    path = path_of(link["link_url"])
    qrs: list[str] = []
    views: list[str] = []
    started = time.monotonic()
    async with gateway.client.stream("GET", f"{path}/events") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for event, state in read_events(r):
            assert event == "state"
            views.append(state["view"])
            if state["qr"] and state["qr"] not in qrs:
                qrs.append(state["qr"])
                if len(qrs) == 2:  # the codes rotated: scan the current one
                    scan = await partner.post(f"/sim/devices/{sid}/scan",
                                              json={"phone": PHONE})
                    assert scan.status_code == 200, scan.text
            if state["view"] == "connected":
                assert state["phone"] == f"+{PHONE}"
                break
            assert time.monotonic() - started < 5, views
    assert len(qrs) == 2
    assert views[-1] == "connected"
    assert partner.key not in json.dumps(views)


async def test_the_qr_png_decodes_to_the_drivers_current_code(
        slow_qr: Gateway) -> None:
    partner = await slow_qr.register()
    device = await partner.create_device()
    link = await make_link(partner, device["session_id"])
    path = path_of(link["link_url"])

    async def qr_url() -> str | None:
        return (await slow_qr.client.get(f"{path}/state")).json()["qr"]

    url = await wait_for(qr_url)
    png = await slow_qr.client.get(url)
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    code = decode(Image.open(io.BytesIO(png.content)))[0].data.decode()
    sim = (await partner.get(f"/sim/devices/{device['session_id']}")).json()
    assert code == sim["qr"]
    assert sim["qr"] not in url  # the URL names the code by a hash only


async def test_pairing_code_via_the_page(slow_qr: Gateway) -> None:
    partner = await slow_qr.register()
    device = await partner.create_device()
    sid = device["session_id"]
    path = path_of((await make_link(partner, sid))["link_url"])

    r = await slow_qr.client.post(f"{path}/pair", json={"phone": "12"})
    assert_error(r, 422, str(r.json()["code"]))
    r = await slow_qr.client.post(f"{path}/pair", json={"phone": "+91 98765 43210"})
    assert r.status_code == 200, r.text
    code = r.json()["pairing_code"]
    assert len(code) == 9
    assert code[4] == "-"
    assert r.json()["phone"] == f"+{PHONE}"

    # the same without a script: a form post answers with the page showing the code
    r = await slow_qr.client.post(f"{path}/pair", data={"phone": PHONE})
    assert r.status_code == 200
    assert_page_headers(r)
    form_code = r.text.split('id="pairing-code" class="code">', 1)[1].split("<", 1)[0]
    assert len(form_code) == 9

    r = await partner.post(f"/sim/devices/{sid}/scan", json={"phone": PHONE, "code": form_code})
    assert r.status_code == 200, r.text

    async def connected() -> dict[str, Any] | None:
        state: dict[str, Any] = (await slow_qr.client.get(f"{path}/state")).json()
        return state if state["view"] == "connected" else None

    state = await wait_for(connected)
    assert state["phone"] == f"+{PHONE}"
    page = await slow_qr.client.get(path)
    assert f"+{PHONE}" in page.text
    assert "Connected" in page.text
    r = await slow_qr.client.post(f"{path}/pair", json={"phone": PHONE})
    assert_error(r, 409, "already_linked")


async def test_expired_codes_can_be_restarted_from_the_page(
        gateway: Gateway, partner: Partner) -> None:
    device = await partner.create_device()
    path = path_of((await make_link(partner, device["session_id"]))["link_url"])

    async def expired() -> bool:  # six fast codes (about 2 s), then the device is unlinked
        return (await gateway.client.get(f"{path}/state")).json()["view"] == "expired"

    await wait_for(expired, timeout=10)
    r = await gateway.client.post(f"{path}/start", json={})
    assert r.status_code == 200, r.text
    assert r.json()["view"] in ("waiting", "qr")
    r = await gateway.client.post(f"{path}/start", data={"go": "1"})
    assert r.status_code == 303
    assert r.headers["location"] == path


async def test_static_assets_are_packaged_and_hardened(gateway: Gateway) -> None:
    for name, ctype in (("link.js", "javascript"), ("console.js", "javascript"),
                        ("style.css", "text/css")):
        r = await gateway.client.get(f"/static/{name}")
        assert r.status_code == 200, name
        assert ctype in r.headers["content-type"]
        assert r.headers["x-content-type-options"] == "nosniff"


async def test_events_end_with_gone_once_the_link_is_revoked(
        gateway: Gateway, partner: Partner) -> None:
    device = await partner.create_device()
    sid = device["session_id"]
    path = path_of((await make_link(partner, sid))["link_url"])
    seen: list[str] = []
    async with gateway.client.stream("GET", f"{path}/events") as r:
        async for event, _ in read_events(r):
            seen.append(event)
            if len(seen) == 1:
                assert (await partner.delete(f"/partner/devices/{sid}/link")).status_code == 200
            if event == "gone":
                break
    assert seen[0] == "state"
    assert seen[-1] == "gone"
