"""Message kinds: media by upload or URL (sniffed, size-capped, SSRF-guarded), location, link
preview, the on-WhatsApp check and the typing indicator — through the real app, the real
store, the simulated WhatsApp, and a real HTTP file server on loopback for media_url."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import Gateway, Partner, start_gateway, wait_for
from tests.loopback import Loopback
from tests.test_api_partners import assert_error
from tests.test_delivery import take_offline
from tests.test_security import services

TO = "919876543210"
ABSENT = "447911123456"  # the simulated WhatsApp says this number has no account


def png(size: int = 8) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def noisy_png(side: int) -> bytes:
    """A PNG that does not compress: about 3 bytes a pixel."""
    import random

    rng = random.Random(7)
    img = Image.frombytes("RGB", (side, side), bytes(rng.randrange(256)
                                                     for _ in range(side * side * 3)))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
OGG = b"OggS\x00\x02" + b"\x00" * 20 + b"\x01\x13OpusHead\x01\x01" + b"\x00" * 40
MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x0f" + b"\x00" * 15 + b"\xff\xfb\x90\x64" + b"\x00" * 400


class Files:
    """A file server on loopback for media_url: files, redirects, errors, a slow body."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}
        self.url = ""
        self.hits = 0
        self._server: Loopback | None = None

    async def _serve(self, request: Request) -> Response:
        self.hits += 1
        name = request.path_params["name"]
        if name == "redirect":
            return RedirectResponse(f"{self.url}/{request.query_params['to']}", 302)
        if name == "loop":
            return RedirectResponse(f"{self.url}/loop", 302)
        if name == "slow":
            async def trickle() -> AsyncIterator[bytes]:
                yield b"%PDF-1.4\n"
                await asyncio.sleep(5)
                yield b"never"
            return StreamingResponse(trickle(), media_type="application/pdf")
        if name == "endless":  # no Content-Length, more than any limit
            async def endless() -> AsyncIterator[bytes]:
                for _ in range(64):  # 4 MiB, far over the limit; then it ends
                    yield b"\0" * 65536
                    await asyncio.sleep(0)  # this server shares the test's event loop
            return StreamingResponse(endless(), media_type="application/octet-stream")
        if name not in self.files:
            return Response("not found", status_code=404)
        data, ctype = self.files[name]
        return Response(data, media_type=ctype)

    async def start(self) -> None:
        self._server = Loopback(Starlette(routes=[Route("/{name}", self._serve)]))
        await self._server.start()
        self.url = self._server.url

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(force=True)  # "slow" still trickles


ENV = {"WAGATE_DELIVERY_MEDIA_ALLOW_PRIVATE": "1", "WAGATE_DELIVERY_MAX_MEDIA_BYTES": "200000",
       "WAGATE_DELIVERY_MEDIA_FETCH_TIMEOUT": "1",
       "WAGATE_SIMULATED_NOT_ON_WHATSAPP": ABSENT}


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    gateway = await start_gateway(tmp_path / "data", ENV)
    try:
        yield gateway
    finally:
        await gateway.stop()


@pytest.fixture
async def files() -> AsyncIterator[Files]:
    server = Files()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def linked(gw: Gateway) -> tuple[Partner, dict[str, Any]]:
    partner = await gw.register()
    device = await partner.linked_device()
    return partner, device


async def received(partner: Partner, device: dict[str, Any]) -> list[dict[str, Any]]:
    r = await partner.get(f"/sim/devices/{device['session_id']}/sent")
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()["messages"]
    return rows


async def queued_total(partner: Partner, device: dict[str, Any]) -> int:
    r = await partner.get(f"/partner/devices/{device['session_id']}/messages")
    return len(r.json()["messages"])


async def test_media_by_upload_is_sniffed_stored_and_sent(
        gw: Gateway, linked: tuple[Partner, dict[str, Any]], subtests: pytest.Subtests) -> None:
    partner, device = linked
    url = device["send_url"]
    image = png()
    with subtests.test("an image upload, kind from its bytes, caption kept"):
        # The declared type lies; the bytes decide.
        r = await gw.client.post(url, data={"to": TO, "message": "the logo"},
                                 files={"file": ("logo.txt", image, "text/plain")})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "sent"
        got = (await received(partner, device))[-1]
        assert got["kind"] == "image"
        assert got["message"] == "the logo"
        assert got["media"]["mime"] == "image/png"
        assert got["media"]["size"] == len(image)
        view = (await partner.get(f"/partner/messages/{r.json()['message_id']}")).json()
        assert view["kind"] == "image"
        assert view["media"]["mime"] == "image/png"
    with subtests.test("a document upload keeps a safe file name"):
        r = await gw.client.post(url, data={"to": TO, "type": "document"},
                                 files={"file": ("../../etc/invoice.pdf", PDF, "x/y")})
        assert r.status_code == 200, r.text
        got = (await received(partner, device))[-1]
        assert got["kind"] == "document"
        assert got["media"] == {"mime": "application/pdf", "size": len(PDF),
                                "filename": "invoice.pdf"}
        for given, kept in (("in\x01voice.pdf", "in_voice.pdf"), ("C:\\docs\\a.pdf", "a.pdf"),
                            ("..", "file.pdf")):
            r = await gw.client.post(url, data={"to": TO, "filename": given},
                                     files={"file": ("x", PDF, "x/y")})
            assert (await received(partner, device))[-1]["media"]["filename"] == kept
    with subtests.test("a voice note must be OGG/Opus"):
        r = await gw.client.post(url, data={"to": TO, "type": "voice"},
                                 files={"file": ("note.ogg", OGG, "audio/ogg")})
        assert r.status_code == 200, r.text
        assert (await received(partner, device))[-1]["kind"] == "voice"
        r = await gw.client.post(url, data={"to": TO, "type": "voice"},
                                 files={"file": ("note.mp3", MP3, "audio/ogg")})
        body = assert_error(r, 422, "media_type_mismatch")
        assert body["detected"] == "audio/mpeg"
    with subtests.test("the same bytes are stored once"):
        blobs = [p for p in (gw.config.data_dir / "media").rglob("*") if p.is_file()]
        r = await gw.client.post(url, data={"to": TO},
                                 files={"file": ("again.png", image, "image/png")})
        assert r.status_code == 200, r.text
        assert [p for p in (gw.config.data_dir / "media").rglob("*") if p.is_file()] == blobs


async def test_media_that_whatsapp_would_refuse_is_refused_and_nothing_queued(
        gw: Gateway, linked: tuple[Partner, dict[str, Any]], subtests: pytest.Subtests) -> None:
    partner, device = linked
    url = device["send_url"]
    cases = [
        ("a PDF as an image", {"type": "image"}, PDF, 422, "media_type_mismatch"),
        ("an MP3 as a video", {"type": "video"}, MP3, 422, "media_type_mismatch"),
        ("an empty file", {}, b"", 422, "media_empty"),
        ("over delivery.max_media_bytes", {}, noisy_png(300), 413, "media_too_large"),
        ("media on a text message", {"type": "text", "message": "x"}, PDF, 400,
         "invalid_field"),
    ]
    for name, fields, data, status, code in cases:
        with subtests.test(name):
            r = await gw.client.post(url, data={"to": TO, **fields},
                                     files={"file": ("f.bin", data, "image/png")})
            assert_error(r, status, code)
    with subtests.test("a body far over the upload limit is cut off by Content-Length"):
        r = await gw.client.post(url, data={"to": TO},
                                 files={"file": ("big.bin", b"\0" * 600_000, "image/png")})
        assert_error(r, 413, "payload_too_large")
    with subtests.test("a media kind without media"):
        r = await gw.client.post(url, json={"to": TO, "type": "image", "message": "x"})
        assert_error(r, 400, "missing_field", "media_url")
    with subtests.test("an unknown kind"):
        r = await gw.client.post(url, json={"to": TO, "type": "sticker", "message": "x"})
        assert_error(r, 400, "invalid_field", "type")
    assert await received(partner, device) == []
    assert await queued_total(partner, device) == 0


async def test_media_by_url(gw: Gateway, linked: tuple[Partner, dict[str, Any]], files: Files,
                            subtests: pytest.Subtests) -> None:
    partner, device = linked
    url = device["send_url"]
    files.files["scan.pdf"] = (PDF, "application/octet-stream")
    files.files["photo"] = (png(), "application/octet-stream")
    with subtests.test("a document by URL, named after the URL"):
        r = await gw.client.get(url, params={"to": TO, "media_url": f"{files.url}/scan.pdf",
                                             "message": "your invoice"})
        assert r.status_code == 200, r.text
        got = (await received(partner, device))[-1]
        assert got["kind"] == "document"
        assert got["media"]["filename"] == "scan.pdf"
        assert got["message"] == "your invoice"
    with subtests.test("through a redirect, kind from the bytes"):
        r = await gw.client.post(url, json={"to": TO,
                                            "media_url": f"{files.url}/redirect?to=photo"})
        assert r.status_code == 200, r.text
        assert (await received(partner, device))[-1]["kind"] == "image"
    failures = [
        ("a 404", f"{files.url}/missing.pdf", 422, "media_fetch_failed"),
        ("a redirect loop", f"{files.url}/loop", 422, "media_fetch_failed"),
        ("a body that never ends, over the limit", f"{files.url}/endless", 413,
         "media_too_large"),
        ("a server that stalls (media_fetch_timeout)", f"{files.url}/slow", 422,
         "media_fetch_failed"),
        ("a name that does not resolve", "http://no-such-host.invalid/a.png", 422,
         "media_url_refused"),
        ("not http", "file:///etc/passwd", 400, "invalid_field"),
    ]
    for name, media_url, status, code in failures:
        with subtests.test(name):
            r = await gw.client.post(url, json={"to": TO, "media_url": media_url})
            body = assert_error(r, status, code)
            assert body.get("field", "media_url") == "media_url"
    assert len(await received(partner, device)) == 2


async def test_media_url_inside_the_network_is_refused_unless_allowed(
        tmp_path: Path, files: Files) -> None:
    files.files["a.png"] = (png(), "image/png")
    gw = await start_gateway(tmp_path / "data")  # media_allow_private off (the default)
    try:
        partner = await gw.register()
        device = await partner.linked_device()
        for target in (f"{files.url}/a.png", "http://10.0.0.1/a.png",
                       "http://169.254.169.254/latest/meta-data/",
                       f"http://localhost:{files.url.rsplit(':', 1)[1]}/a.png"):
            r = await gw.client.post(device["send_url"], json={"to": TO, "media_url": target})
            body = assert_error(r, 422, "media_url_refused")
            assert "delivery.media_allow_private" in body["message"]
        assert files.hits == 0
        assert await received(partner, device) == []
    finally:
        await gw.stop()


async def test_location_and_link_preview(gw: Gateway, linked: tuple[Partner, dict[str, Any]],
                                         subtests: pytest.Subtests) -> None:
    partner, device = linked
    url = device["send_url"]
    with subtests.test("a location"):
        r = await gw.client.get(url, params={"to": TO, "type": "location", "latitude": "12.9716",
                                             "longitude": "77.5946", "name": "Office",
                                             "address": "MG Road, Bengaluru"})
        assert r.status_code == 200, r.text
        got = (await received(partner, device))[-1]
        assert got["kind"] == "location"
        assert got["location"] == {"latitude": 12.9716, "longitude": 77.5946, "name": "Office",
                                   "address": "MG Road, Bengaluru"}
    for lat, lng, field in (("91", "0", "latitude"), ("0", "-181", "longitude"),
                            ("north", "0", "latitude"), ("nan", "0", "latitude"),
                            (None, "0", "latitude")):
        with subtests.test("a bad coordinate", lat=lat, lng=lng):
            body: dict[str, Any] = {"to": TO, "type": "location", "longitude": lng}
            if lat is not None:
                body["latitude"] = lat
            r = await gw.client.post(url, json=body)
            assert_error(r, 400, r.json().get("code", "?"), field)
    with subtests.test("link preview"):
        r = await gw.client.post(url, json={"to": TO, "message": "see https://example.com",
                                            "link_preview": True})
        assert r.status_code == 200, r.text
        assert (await received(partner, device))[-1]["link_preview"] is True
        view = (await partner.get(f"/partner/messages/{r.json()['message_id']}")).json()
        assert view["link_preview"] is True


async def test_partner_api_sends_like_the_send_url(
        gw: Gateway, linked: tuple[Partner, dict[str, Any]]) -> None:
    partner, device = linked
    path = f"/partner/devices/{device['session_id']}/messages"
    r = await partner.post(path, json={"to": TO, "message": "from the API"})
    assert r.status_code == 200, r.text
    assert r.json()["message"] == "Message sent"
    r = await partner.post(path, data={"to": TO, "message": "a photo"},
                           files={"file": ("p.png", png(), "image/png")})
    assert r.status_code == 200, r.text
    kinds = [m["kind"] for m in await received(partner, device)]
    assert kinds == ["text", "image"]
    # An idempotent retry through the API answers the first answer.
    first = await partner.post(path, json={"to": TO, "message": "once"},
                               headers={"idempotency-key": "k1"})
    again = await partner.post(path, json={"to": TO, "message": "once"},
                               headers={"idempotency-key": "k1"})
    assert again.json()["message_id"] == first.json()["message_id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await partner.post(path, data={"to": TO}, headers={"idempotency-key": "k1"},
                               files={"file": ("p.png", png(), "image/png")})
    assert_error(other, 422, "idempotency_mismatch")
    # Another partner's device is not there.
    stranger = await gw.register("Other", "other@example.com")
    assert_error(await stranger.post(path, json={"to": TO, "message": "x"}), 404,
                 "device_not_found")


async def test_on_whatsapp_check(gw: Gateway, linked: tuple[Partner, dict[str, Any]],
                                 subtests: pytest.Subtests) -> None:
    partner, device = linked
    url = device["send_url"]
    with subtests.test("a number without WhatsApp fails fast, nothing queued"):
        r = await gw.client.post(url, json={"to": f"+{ABSENT}", "message": "hi", "check": 1})
        assert_error(r, 422, "not_on_whatsapp", "to")
        assert await queued_total(partner, device) == 0
    with subtests.test("a number with WhatsApp goes out"):
        r = await gw.client.post(url, json={"to": TO, "message": "hi", "check": True})
        assert r.status_code == 200, r.text
    with subtests.test("without check, nothing is asked"):
        r = await gw.client.post(url, json={"to": ABSENT, "message": "unchecked"})
        assert r.status_code == 200, r.text
    with subtests.test("answers are cached: they hold while the device is offline"):
        await take_offline(partner, device["session_id"])
        r = await gw.client.post(url, json={"to": ABSENT, "message": "hi", "check": 1})
        assert_error(r, 422, "not_on_whatsapp")
        r = await gw.client.post(url, json={"to": TO, "message": "hi", "check": 1,
                                            "async": True})
        assert r.status_code == 202, r.text
    with subtests.test("an uncached number while offline: 503, try later"):
        r = await gw.client.post(url, json={"to": "14155552671", "message": "hi", "check": 1})
        assert_error(r, 503, "check_unavailable")


async def test_typing_indicator_before_each_message(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path / "data", {
        "WAGATE_DELIVERY_TYPING_SECONDS": "0.05", "WAGATE_DELIVERY_RATE_PER_MINUTE": "6000",
        "WAGATE_DELIVERY_BURST": "10"})
    try:
        partner = await gw.register()
        device = await partner.linked_device()
        for n in range(3):
            r = await gw.client.post(device["send_url"], json={"to": TO, "message": f"m{n}"})
            assert r.status_code == 200, r.text
        state = (await partner.get(f"/sim/devices/{device['session_id']}")).json()
        assert state["typing"] == 3
        assert len(await received(partner, device)) == 3
    finally:
        await gw.stop()


async def test_media_blobs_live_while_a_message_needs_them(
        gw: Gateway, linked: tuple[Partner, dict[str, Any]]) -> None:
    partner, device = linked
    manager = services(gw).manager
    media_dir = gw.config.data_dir / "media"
    await take_offline(partner, device["session_id"])
    r = await gw.client.post(device["send_url"], data={"to": TO, "async": "1"},
                             files={"file": ("p.png", png(), "image/png")})
    assert r.status_code == 202, r.text
    # Queued: the clean-up keeps its blob even with no grace period.
    assert await manager.collect_media(grace=0) == 0
    assert len([p for p in media_dir.rglob("*") if p.is_file()]) == 1

    async def sent() -> bool:
        return bool(await received(partner, device))

    await partner.post(f"/sim/devices/{device['session_id']}/faults", json={})
    await partner.wait_status(device["session_id"], "connected")
    await wait_for(sent)
    got = (await received(partner, device))[0]
    assert got["kind"] == "image"
    # Sent: nothing needs it any more.
    assert await manager.collect_media(grace=0) == 1
    assert [p for p in media_dir.rglob("*") if p.is_file()] == []


async def test_multipart_upload_over_loopback_with_a_real_client(
        gw: Gateway, linked: tuple[Partner, dict[str, Any]]) -> None:
    """A LAN device's curl -F: the form fields and the file in one multipart body."""
    partner, device = linked
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.post(device["send_url"], files={
            "to": (None, TO), "message": (None, "scanned"),
            "file": ("scan.pdf", PDF, "application/pdf")})
    assert r.status_code == 200, r.text
    got = (await received(partner, device))[-1]
    assert got["kind"] == "document"
    assert got["media"]["filename"] == "scan.pdf"
