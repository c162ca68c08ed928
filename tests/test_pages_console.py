"""The partner console: sign-in with the API key, the session cookie, CSRF on every form,
sign-out, and the pages (users, devices, test send, messages, webhooks) over real HTTP."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.tls import client_context
from gateway.tokens import new_token, token_hash
from tests.conftest import Gateway, Partner, make_config, start_gateway, wait_for
from tests.receiver import Receiver
from tests.test_pages_link import assert_missing_page, assert_page_headers

PHONE = "919876543210"
LOCAL = {"WAGATE_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true", "WAGATE_WEBHOOKS_ALLOW_HTTP": "true"}
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Console:
    """A browser without a browser: its own cookie jar, reads CSRF tokens from the forms."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.client = httpx.AsyncClient(base_url=gateway.url, timeout=10,
                                        verify=client_context())

    async def aclose(self) -> None:
        await self.client.aclose()

    async def sign_in(self, key: str) -> httpx.Response:
        page = await self.client.get("/console/login")
        assert page.status_code == 200
        return await self.client.post("/console/login",
                                      data={"csrf": csrf_of(page), "api_key": key})

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(path, **kw)

    async def post_form(self, page_path: str, action: str, data: dict[str, str]) -> httpx.Response:
        """Submit a form the way a browser would: with the CSRF token of the page it is on."""
        page = await self.client.get(page_path)
        assert page.status_code == 200, page.text
        return await self.client.post(action, data={"csrf": csrf_of(page), **data})


def csrf_of(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


@pytest.fixture
async def console(gateway: Gateway) -> AsyncIterator[Console]:
    c = Console(gateway)
    yield c
    await c.aclose()


@pytest.fixture
async def local_gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await start_gateway(tmp_path / "data", env=LOCAL)
    try:
        yield gw
    finally:
        await gw.stop()


async def test_sign_in_sets_a_session_cookie_that_is_not_the_key(
        console: Console, partner: Partner) -> None:
    r = await console.get("/console/devices")
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login"
    r = await console.get("/console/devices/status")
    assert r.status_code == 401

    r = await console.sign_in(partner.key)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/console/devices"
    cookie = next(h for h in r.headers.get_list("set-cookie")
                  if h.startswith("wagate_console="))
    value = cookie.split(";", 1)[0].split("=", 1)[1]
    assert partner.key not in cookie
    assert token_hash(partner.key) not in cookie
    assert len(value) >= 40
    attrs = cookie.lower()
    assert "httponly" in attrs
    assert "samesite=lax" in attrs
    assert "path=/console" in attrs
    assert "secure" not in attrs  # plain http public URL

    r = await console.get("/console/devices")
    assert r.status_code == 200
    assert_page_headers(r)
    assert "ABC Reseller" in r.text
    assert partner.key not in r.text
    assert (await console.get("/console")).headers["location"] == "/console/devices"
    assert (await console.get("/console/login")).status_code == 303  # already signed in


async def test_sign_in_refuses_bad_keys_and_forged_forms(
        console: Console, partner: Partner) -> None:
    r = await console.sign_in(new_token("pk"))
    assert r.status_code == 401
    assert "not valid" in r.text
    r = await console.sign_in("not a key")
    assert r.status_code == 401
    # a sign-in form posted without (or with another) CSRF token: refused even with a good key
    fresh = httpx.AsyncClient(base_url=console.gateway.url)
    try:
        r = await fresh.post("/console/login", data={"csrf": "x" * 43, "api_key": partner.key})
        assert r.status_code == 403
        assert "wagate_console" not in r.headers.get("set-cookie", "")
    finally:
        await fresh.aclose()
    assert (await console.get("/console/devices")).status_code == 303


async def test_every_post_needs_the_sessions_csrf_token(
        gateway: Gateway, console: Console, partner: Partner) -> None:
    await console.sign_in(partner.key)
    for data in ({}, {"csrf": ""}, {"csrf": "forged"}, {"csrf": new_token("pk")}):
        r = await console.client.post("/console/users", data={**data, "label": "Eve"})
        assert r.status_code == 403, data
        assert_page_headers(r)
    # another signed-in session's token is not this session's
    other = Console(gateway)
    try:
        await other.sign_in(partner.key)
        page = await other.get("/console/users")
        r = await console.client.post("/console/users",
                                      data={"csrf": csrf_of(page), "label": "Eve"})
        assert r.status_code == 403
    finally:
        await other.aclose()
    assert (await partner.get("/partner/users")).json()["users"] == []
    r = await console.post_form("/console/users", "/console/users",
                                {"label": "John Doe", "email": "john@example.com"})
    assert r.status_code == 303
    users = (await partner.get("/partner/users")).json()["users"]
    assert [u["label"] for u in users] == ["John Doe"]
    page = await console.get("/console/users")
    assert users[0]["user_token"] in page.text  # shown in the flash and the table


async def test_sign_out_ends_the_session(console: Console, partner: Partner) -> None:
    await console.sign_in(partner.key)
    sid = console.client.cookies["wagate_console"]
    r = await console.client.post("/console/logout", data={"csrf": "wrong"})
    assert r.status_code == 403
    r = await console.post_form("/console/devices", "/console/logout", {})
    assert r.status_code == 303
    assert r.headers["location"] == "/console/login"
    assert 'wagate_console=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers[
        "set-cookie"]
    # the old cookie replayed is worth nothing
    replay = httpx.AsyncClient(base_url=console.gateway.url, cookies={"wagate_console": sid})
    try:
        assert (await replay.get("/console/devices")).status_code == 303
    finally:
        await replay.aclose()


async def test_rotating_the_key_ends_console_sessions(
        gateway: Gateway, console: Console, partner: Partner) -> None:
    await console.sign_in(partner.key)
    assert (await console.get("/console/devices")).status_code == 200

    def rotate() -> None:  # what `wagate partners rotate-key` does, from another connection
        # in a thread: the in-process daemon shares this event loop and must keep committing
        db = sqlite3.connect(gateway.config.database_path)
        try:
            with db:
                db.execute("UPDATE partners SET key_hash = ?", (token_hash(new_token("pk")),))
        finally:
            db.close()

    await asyncio.to_thread(rotate)
    assert (await console.get("/console/devices")).status_code == 303


async def test_cookie_is_secure_behind_an_https_public_url(tmp_path: Path) -> None:
    gw = Gateway(make_config(tmp_path / "data", WAGATE_PUBLIC_URL="https://wa.example.com"))
    await gw.start()
    try:
        partner = await gw.register()
        page = await gw.client.get("/console/login")
        login_cookie = page.headers["set-cookie"]
        assert "secure" in login_cookie.lower()
        # over plain http a client keeps Secure cookies to itself: hand it over explicitly
        login_value = login_cookie.split(";", 1)[0]
        r = await gw.client.post("/console/login", headers={"cookie": login_value},
                                 data={"csrf": csrf_of(page), "api_key": partner.key})
        assert r.status_code == 303
        cookie = next(h for h in r.headers.get_list("set-cookie")
                      if h.startswith("wagate_console="))
        assert "secure" in cookie.lower()
        assert "httponly" in cookie.lower()
    finally:
        await gw.stop()


async def test_devices_link_pages_test_send_and_message_timeline(
        gateway: Gateway, console: Console, partner: Partner) -> None:
    await console.sign_in(partner.key)
    r = await console.get("/console/devices")
    assert "Create a" in r.text
    assert "user" in r.text
    await console.post_form("/console/users", "/console/users", {"label": "John Doe"})
    page = await console.get("/console/devices")
    user_id = re.search(r'<option value="(\d+)">John Doe</option>', page.text)
    assert user_id
    r = await console.client.post("/console/devices", data={
        "csrf": csrf_of(page), "user": user_id.group(1), "device_name": "John iPhone"})
    assert r.status_code == 303
    device_path = r.headers["location"]
    sid = device_path.rsplit("/", 1)[1]
    assert sid.startswith("wa_")

    async def qr_shown() -> dict[str, Any] | None:
        state: dict[str, Any] = (await console.get(f"{device_path}/state")).json()
        return state if state["qr"] else None

    state = await wait_for(qr_shown)
    png = await console.get(state["qr"])
    assert png.status_code == 200
    assert png.headers["content-type"] == "image/png"
    live = (await console.get("/console/devices/status")).json()["devices"]
    assert [d["session_id"] for d in live] == [sid]

    # a link page made from the console works and shows no secret
    r = await console.post_form(device_path, f"{device_path}/link", {"expires_in": "3600"})
    assert r.status_code == 303
    page = await console.get(device_path)
    link = re.search(r'(http://[^<"]+/link/lt_[A-Za-z0-9]+)', page.text)
    assert link, page.text
    link_page = await gateway.client.get(httpx.URL(link.group(1)).path)
    assert link_page.status_code == 200
    assert "John iPhone" in link_page.text
    r = await console.post_form(device_path, f"{device_path}/link/revoke", {})
    assert "1 link page(s) revoked" in (await console.get(device_path)).text
    assert_missing_page(await gateway.client.get(httpx.URL(link.group(1)).path))
    audit = (await partner.get("/partner/audit")).json()["entries"]
    assert [(e["action"], e["actor"], e["target"]) for e in audit[:2]] == [
        ("device.links_revoked", "console", sid), ("device.link_created", "console", sid)]

    # test send before linking: the send URL's own answer, shown as an error
    r = await console.post_form(device_path, f"{device_path}/send",
                                {"to": PHONE, "message": "too early"})
    page = await console.get(device_path)
    assert "Not sent (HTTP 409)" in page.text

    await partner.link(sid)
    assert "connected" in (await console.get(device_path)).text
    r = await console.post_form(device_path, f"{device_path}/send",
                                {"to": "+91 98765 43210", "message": "Hello from the console"})
    assert r.status_code == 303
    page = await console.get(device_path)
    assert "Message sent (HTTP 200, status sent)" in page.text
    message_id = re.search(r"<code class=\"copy\">([0-9A-F]{20,})</code>", page.text)
    assert message_id, page.text
    sent = (await partner.get(f"/sim/devices/{sid}/sent")).json()["messages"]
    assert [m["message"] for m in sent] == ["Hello from the console"]

    listing = await console.get(f"/console/messages?device={sid}")
    assert message_id.group(1) in listing.text
    assert "Hello from the console" in listing.text

    async def read() -> bool:
        page = await console.get(f"/console/messages/{message_id.group(1)}")
        return 'data-status="read"' in page.text

    await wait_for(read)
    timeline = (await console.get(f"/console/messages/{message_id.group(1)}")).text
    steps = re.findall(r'<li><span class="status" data-status="(\w+)"', timeline)
    assert steps == ["queued", "sending", "sent", "delivered", "read"]


async def test_another_partners_things_are_404_pages(
        gateway: Gateway, console: Console, partner: Partner) -> None:
    other = await gateway.register("Other", "other@example.com")
    device = await other.create_device()
    sid = device["session_id"]
    await console.sign_in(partner.key)
    for path in (f"/console/devices/{sid}", "/console/messages/3EB0000000000000000000",
                 "/console/webhooks/we_0000000000000000"):
        r = await console.get(path)
        assert r.status_code == 404, path
        assert "There is no such thing here." in r.text
    assert (await console.get(f"/console/devices/{sid}/state")).status_code == 404
    assert (await console.get(f"/console/devices/{sid}/qr.png")).status_code == 404
    r = await console.post_form("/console/devices", f"/console/devices/{sid}/link", {})
    assert r.status_code == 404
    r = await console.post_form("/console/devices", f"/console/devices/{sid}/send",
                                {"to": PHONE, "message": "x"})
    assert r.status_code == 404
    assert (await other.delete(f"/partner/devices/{sid}/link")).json()["revoked"] == 0
    assert sid not in (await console.get("/console/devices")).text


async def test_webhooks_delivery_log_and_redelivery(local_gateway: Gateway) -> None:
    receiver = Receiver()
    await receiver.start()
    console = Console(local_gateway)
    try:
        partner = await local_gateway.register()
        await console.sign_in(partner.key)
        r = await console.post_form("/console/webhooks", "/console/webhooks",
                                    {"url": "ftp://example.com/x", "events": "*"})
        assert "cannot be used" in (await console.get("/console/webhooks")).text
        r = await console.post_form("/console/webhooks", "/console/webhooks",
                                    {"url": receiver.url, "events": "*"})
        assert r.status_code == 303
        hook_path = r.headers["location"]
        page = await console.get(hook_path)
        assert "whsec_" in page.text  # the secret, once
        assert "whsec_" not in (await console.get(hook_path)).text
        await console.post_form(hook_path, f"{hook_path}/test", {})

        async def delivered() -> str | None:
            text = (await console.get(hook_path)).text
            return text if 'data-status="delivered"' in text and "HTTP 200" in text else None

        page_text = await wait_for(delivered)
        assert "webhook.test" in page_text
        delivery_id = re.search(r'data-delivery-id="(\d+)"', page_text)
        assert delivery_id
        r = await console.post_form(hook_path, f"{hook_path}/deliveries/"
                                    f"{delivery_id.group(1)}/redeliver", {})
        assert r.status_code == 303
        await wait_for(lambda: _async(len(receiver.received) == 2))
        assert receiver.types() == ["webhook.test", "webhook.test"]
        listing = await console.get("/console/webhooks")
        assert receiver.url in listing.text
        created = (await partner.get("/partner/audit")).json()["entries"][0]
        assert (created["action"], created["actor"], created["detail"]["url"]) == (
            "webhook.created", "console", receiver.url)
    finally:
        await console.aclose()
        await receiver.stop()


async def _async(value: Any) -> Any:
    return value


async def test_wallet_and_plugins_are_placeholders(console: Console, partner: Partner) -> None:
    await console.sign_in(partner.key)
    for path in ("/console/wallet", "/console/plugins"):
        r = await console.get(path)
        assert r.status_code == 200
        assert "arrive with the wallet issue" in r.text
