"""Browser tests: Debian's chromium, headless, driven by playwright, against the real daemon.

The link page shows a QR code that decodes (from a screenshot of what the browser drew) to the
simulated driver's current code, follows the rotation, and flips to "connected" after a scan;
the console signs in, creates a user and a device, links it, test-sends, and shows a webhook's
delivery log; the operator console signs in with the operator token and suspends a partner. Set
WAGATE_SCREENSHOT_DIR to keep screenshots (docs/screenshots is made so).
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from pyzbar.pyzbar import decode

from gateway.operator import operator_token
from gateway.tokens import new_token, token_hash
from tests.conftest import Gateway, start_gateway, wait_for
from tests.receiver import Receiver
from tests.test_pages_link import make_link
from tests.test_security import services

CHROMIUM = os.environ.get("WAGATE_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
PHONE = "919876543210"

if not Path(CHROMIUM).exists():
    pytest.skip(f"chromium not found at {CHROMIUM}: install the Debian package `chromium` "
                "(make test does so as root) to run the browser tests", allow_module_level=True)
async_api = pytest.importorskip("playwright.async_api",
                                reason="playwright is not installed (pip install -e '.[dev]')")
Browser = Any  # playwright.async_api.Browser; kept loose so the skip above can happen first
Page = Any


def shots() -> Path | None:
    where = os.environ.get("WAGATE_SCREENSHOT_DIR")
    if not where:
        return None
    path = Path(where)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_api.async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            await b.close()


@pytest.fixture
async def rotating(tmp_path: Path) -> AsyncIterator[Gateway]:
    """QR codes that last long enough to look at, and still rotate within the test."""
    gw = await start_gateway(tmp_path / "data", env={
        "WAGATE_SIMULATED_QR_FIRST_SECONDS": "3", "WAGATE_SIMULATED_QR_NEXT_SECONDS": "2"})
    try:
        yield gw
    finally:
        await gw.stop()


@pytest.fixture
async def webhook_gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await start_gateway(tmp_path / "data", env={
        "WAGATE_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true", "WAGATE_WEBHOOKS_ALLOW_HTTP": "true",
        "WAGATE_SIMULATED_QR_FIRST_SECONDS": "30"})
    try:
        yield gw
    finally:
        await gw.stop()


async def drawn_qr(page: Page, selector: str) -> str:
    """Decode the QR code as the browser drew it."""
    await page.wait_for_function(
        "s => { const i = document.querySelector(s); "
        "return i && !i.hidden && i.complete && i.naturalWidth > 0; }", arg=selector)
    png = await page.locator(selector).screenshot()
    found = decode(Image.open(io.BytesIO(png)))
    assert found, "no QR code in the screenshot"
    return str(found[0].data.decode())


async def test_link_page_shows_the_current_qr_and_flips_to_connected(
        rotating: Gateway, browser: Browser) -> None:
    gateway = rotating
    partner = await gateway.register()
    device = await partner.create_device(name="Maria's phone")
    sid = device["session_id"]
    link = (await make_link(partner, sid))["link_url"]

    async def sim_qr() -> str:
        return str((await partner.get(f"/sim/devices/{sid}")).json()["qr"])

    phone = await browser.new_context(viewport={"width": 390, "height": 844},
                                      device_scale_factor=2, is_mobile=True, has_touch=True)
    page = await phone.new_page()
    # and one whose browser has no EventSource: the page polls instead
    old = await browser.new_context(viewport={"width": 360, "height": 740})
    await old.add_init_script("delete window.EventSource;")
    polling = await old.new_page()
    await page.goto(link)
    await polling.goto(link)
    assert await page.title() == "Link Maria's phone to WhatsApp"

    first = await drawn_qr(page, "#qr")
    assert first == await sim_qr()
    for p in (page, polling):  # fits a phone's width: nothing to scroll sideways
        assert await p.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    html = await page.content()
    assert partner.key not in html
    assert device["send_url"] not in html
    assert "/wa/" not in html
    where = shots()
    if where:
        await page.screenshot(path=str(where / "link-page-phone.png"), full_page=True)

    # the codes rotate: the page follows without a reload
    await page.wait_for_function("old => document.getElementById('qr').src.indexOf(old) < 0",
                                 arg=httpx.URL(await page.get_attribute("#qr", "src") or "")
                                 .params["v"], timeout=6000)
    second = await drawn_qr(page, "#qr")
    assert second != first
    assert second == await sim_qr()

    r = await partner.post(f"/sim/devices/{sid}/scan", json={"phone": PHONE})
    assert r.status_code == 200, r.text
    for p in (page, polling):
        await p.wait_for_selector("#link[data-view='connected']", timeout=5000)
        assert f"+{PHONE}" in await p.inner_text("#link")
        assert await p.is_hidden("#qr")
    if where:
        await page.screenshot(path=str(where / "link-page-connected.png"), full_page=True)
    await phone.close()
    await old.close()


async def test_link_page_pairing_code_form(rotating: Gateway, browser: Browser) -> None:
    partner = await rotating.register()
    device = await partner.create_device()
    sid = device["session_id"]
    link = (await make_link(partner, sid))["link_url"]
    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    await page.goto(link)
    await page.click("summary")
    await page.fill("#phone", "+91 98765 43210")
    await page.click("#pair-form button")
    await page.wait_for_selector("#pair-result:not([hidden])")
    code = (await page.inner_text("#pairing-code")).strip()
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", code), code
    r = await partner.post(f"/sim/devices/{sid}/scan", json={"phone": PHONE, "code": code})
    assert r.status_code == 200, r.text
    await page.wait_for_selector("#link[data-view='connected']", timeout=5000)
    await context.close()


async def test_console_sign_in_user_device_send_and_webhook_log(
        webhook_gateway: Gateway, browser: Browser) -> None:
    gateway = webhook_gateway
    receiver = Receiver()
    await receiver.start()
    try:
        partner = await gateway.register("ABC Reseller", "abc@reseller.com")
        context = await browser.new_context(viewport={"width": 1280, "height": 860})
        page = await context.new_page()
        await page.goto(f"{gateway.url}/console")
        assert page.url.endswith("/console/login")
        await page.fill("#api_key", partner.key)
        await page.click("#login-form button")
        await page.wait_for_url("**/console/devices")
        cookies = await context.cookies()
        session = next(c for c in cookies if c["name"] == "wagate_console")
        assert session["httpOnly"]
        assert session["sameSite"] == "Lax"
        assert session["value"] != partner.key

        # a user, then a device for them
        await page.click("nav >> text=Users")
        await page.fill("#create-user input[name=label]", "John Doe")
        await page.fill("#create-user input[name=email]", "john@example.com")
        await page.click("#create-user button")
        await page.wait_for_selector(".flash.ok >> text=pu_")
        await page.click("nav >> text=Devices")
        await page.fill("#create-device input[name=device_name]", "John iPhone")
        await page.click("#create-device button")
        await page.wait_for_url(re.compile(r".*/console/devices/wa_[0-9a-f]+$"))
        sid = page.url.rsplit("/", 1)[1]
        code = await drawn_qr(page, "#device-qr")
        assert code == (await partner.get(f"/sim/devices/{sid}")).json()["qr"]
        where = shots()
        if where:
            await page.screenshot(path=str(where / "console-device-pairing.png"))

        # the phone scans; the page's live status follows
        r = await partner.post(f"/sim/devices/{sid}/scan", json={"phone": PHONE})
        assert r.status_code == 200, r.text
        await page.wait_for_selector("[data-field=status][data-status=connected]",
                                     timeout=6000)
        assert await page.is_hidden("#device-qr")

        # a test send through the device's send URL
        await page.fill("#test-send input[name=to]", "+91 98765 43210")
        await page.fill("#test-send textarea[name=message]", "Hello from the console")
        await page.click("#test-send button")
        await page.wait_for_selector(".flash.ok >> text=Message sent")
        sent = (await partner.get(f"/sim/devices/{sid}/sent")).json()["messages"]
        assert [m["message"] for m in sent] == ["Hello from the console"]
        await page.click("text=Messages of this device")
        await page.click("#messages tbody a")
        await page.wait_for_selector("#timeline >> text=sent")

        # a webhook, a test event, its delivery log, a redelivery
        await page.click("nav >> text=Webhooks")
        await page.fill("#create-webhook input[name=url]", receiver.url)
        await page.click("#create-webhook button")
        await page.wait_for_selector(".flash.ok >> text=whsec_")
        await page.click("#send-test-event")
        await page.wait_for_selector(".flash.ok >> text=Test event queued")

        async def delivered() -> bool:
            await page.reload()
            return await page.locator(
                "#deliveries tr:has(.status[data-status=delivered]) >> text=HTTP 200").count() > 0

        await wait_for(delivered, timeout=10, interval=0.3)
        await page.click("#deliveries button >> nth=0")
        await page.wait_for_selector(".flash.ok >> text=queued again")
        await wait_for(lambda: _value(len(receiver.received) >= 2))
        await wait_for(delivered, timeout=10, interval=0.3)  # the log shows it settled again
        if where:
            await page.screenshot(path=str(where / "console-webhook-log.png"))
            await page.click("nav >> text=Devices")
            await page.screenshot(path=str(where / "console-devices.png"))

        # sign out: the cookie is gone and the console asks to sign in again
        await page.click("#sign-out")
        await page.wait_for_url("**/console/login")
        assert not [c for c in await context.cookies() if c["name"] == "wagate_console"]
        await page.goto(f"{gateway.url}/console/devices")
        assert page.url.endswith("/console/login")
        await context.close()
    finally:
        await receiver.stop()


async def test_operator_console_suspends_a_partner(gateway: Gateway, browser: Browser) -> None:
    abc = await gateway.register("ABC Reseller", "abc@reseller.com")
    maria = await abc.linked_device("Maria's phone")
    await abc.create_device(name="Front desk")
    for text in ("Your order has shipped", "Your order was delivered"):
        r = await gateway.client.post(maria["send_url"], json={"to": PHONE, "message": text})
        assert r.status_code == 200, r.text
    xyz = await gateway.register("XYZ Telecom", "ops@xyz.example")
    await xyz.linked_device("Support line")
    await services(gateway).store.create_partner("New Co", "hello@newco.example", "",
                                                 token_hash(new_token("pk")), "pending")
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    await page.goto(f"{gateway.url}/console/operator")
    assert page.url.endswith("/console/operator/login")
    await page.fill("#operator_token", operator_token(services(gateway).vault))
    await page.click("#login-form button")
    await page.wait_for_url("**/console/operator/partners")
    row = page.locator("#partners tr", has_text="XYZ Telecom")
    await row.locator("input[name=reason]").fill("unpaid invoice")
    await row.locator("form.suspend button").click()
    await page.wait_for_selector(".flash.ok >> text=XYZ Telecom) suspended")
    assert await row.locator("[data-field=status]").inner_text() == "suspended"
    r = await xyz.get("/partner/users")
    assert r.json()["code"] == "partner_suspended"
    where = shots()
    if where:
        await page.screenshot(path=str(where / "console-operator.png"))
    await page.click("nav >> text=Devices")
    await page.wait_for_selector("#devices >> text=Support line")
    await page.click("nav >> text=Health")
    await page.wait_for_selector("#health >> text=simulated")
    await page.click("nav >> text=Audit log")
    await page.wait_for_selector("#audit >> text=partner.suspended")
    await page.click("#sign-out")
    await page.wait_for_url("**/console/operator/login")
    await page.goto(f"{gateway.url}/console/operator/partners")
    assert page.url.endswith("/console/operator/login")
    await context.close()


async def _value(value: Any) -> Any:
    return value
