"""The per-device send URL: every way a LAN device may call it, and every way it can fail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.tokens import new_token
from tests.conftest import Gateway, Partner, start_gateway, wait_for
from tests.test_api_partners import SEND_FAILED_CODES, assert_error, assert_not_linked

TO = "919876543210"


@pytest.fixture
async def device(partner: Partner) -> dict[str, Any]:
    return await partner.linked_device()


async def sent(partner: Partner, device: dict[str, Any]) -> list[dict[str, Any]]:
    r = await partner.get(f"/sim/devices/{device['session_id']}/sent")
    assert r.status_code == 200, r.text
    messages: list[dict[str, Any]] = r.json()["messages"]
    return messages


async def message_stats(partner: Partner) -> dict[str, int]:
    stats: dict[str, int] = (await partner.get("/partner/me")).json()["stats"]["messages"]
    return stats


def assert_sent(r: httpx.Response, device_name: str = "John iPhone") -> str:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "success"
    assert body["message"] == "Message sent"
    assert body["device"] == device_name
    assert body["message_id"].startswith("3EB0")
    message_id: str = body["message_id"]
    return message_id


# -- the ways in -----------------------------------------------------------------------------------


async def test_send_json(gateway: Gateway, partner: Partner, device: dict[str, Any]) -> None:
    r = await gateway.client.post(device["send_url"], json={"to": TO, "message": "Hello!"})
    message_id = assert_sent(r)
    assert r.json()["status"] == "sent"
    [received] = await sent(partner, device)
    assert (received["message_id"], received["to"], received["message"]) == (
        message_id, TO, "Hello!")
    assert received["kind"] == "text"
    assert received["attempts"] == 1


async def test_send_form(gateway: Gateway, partner: Partner, device: dict[str, Any]) -> None:
    r = await gateway.client.post(device["send_url"], data={"to": TO, "message": "form"})
    assert_sent(r)
    r = await gateway.client.post(device["send_url"], content=f"to={TO}&message=a%20b+c",
                                  headers={"content-type":
                                           "application/x-www-form-urlencoded; charset=utf-8"})
    assert_sent(r)
    assert [m["message"] for m in await sent(partner, device)] == ["form", "a b c"]


async def test_send_multipart_form_fields(gateway: Gateway, partner: Partner,
                                          device: dict[str, Any]) -> None:
    boundary = "wagateboundary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"to\"\r\n\r\n{TO}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"message\"\r\n\r\n"
            f"multipart\r\n--{boundary}--\r\n")
    r = await gateway.client.post(device["send_url"], content=body.encode(), headers={
        "content-type": f"multipart/form-data; boundary={boundary}"})
    assert_sent(r)
    assert [m["message"] for m in await sent(partner, device)] == ["multipart"]


async def test_send_query_string_get_and_post(gateway: Gateway, partner: Partner,
                                              device: dict[str, Any]) -> None:
    r = await gateway.client.get(device["send_url"], params={"to": TO, "message": "get"})
    assert_sent(r)
    r = await gateway.client.post(device["send_url"], params={"to": TO, "message": "post"})
    assert_sent(r)
    assert [m["message"] for m in await sent(partner, device)] == ["get", "post"]


async def test_send_json_body_with_a_form_content_type(gateway: Gateway, partner: Partner,
                                                       device: dict[str, Any]) -> None:
    # what `curl -d '{"to":…}'` sends: no JSON content type, the body says what it is
    body = b'{"to":"919876543210","message":"curl -d"}'
    r = await gateway.client.post(device["send_url"], content=body, headers={
        "content-type": "application/x-www-form-urlencoded"})
    assert_sent(r)
    r = await gateway.client.post(device["send_url"], content=b"  \n" + body)  # no content type
    assert_sent(r)
    r = await gateway.client.post(device["send_url"], content=body,
                                  headers={"content-type": "text/plain"})
    assert_sent(r)
    r = await gateway.client.post(device["send_url"], content=body,
                                  headers={"content-type": "application/vnd.api+json"})
    assert_sent(r)
    assert len(await sent(partner, device)) == 4


async def test_body_fields_win_over_the_query_string(gateway: Gateway, partner: Partner,
                                                     device: dict[str, Any]) -> None:
    r = await gateway.client.post(device["send_url"], params={"to": TO, "message": "query"},
                                  json={"message": "body"})
    assert_sent(r)
    assert [(m["to"], m["message"]) for m in await sent(partner, device)] == [(TO, "body")]


ACCEPTED_PHONES: list[Any] = [
    "919876543210", "+919876543210", "+91 98765 43210", "whatsapp:+919876543210",
    "WhatsApp:+91 98765-43210", "0091 98765 43210", " 919876543210 ", 919876543210,
]


async def test_accepted_phone_formats_normalise_to_e164(gateway: Gateway, partner: Partner,
                                                        device: dict[str, Any],
                                                        subtests: pytest.Subtests) -> None:
    for to in ACCEPTED_PHONES:
        with subtests.test(to=to):
            r = await gateway.client.post(device["send_url"], json={"to": to, "message": "hi"})
            assert_sent(r)
    assert [m["to"] for m in await sent(partner, device)] == [TO] * len(ACCEPTED_PHONES)
    # the form and the query string take the same formats
    assert_sent(await gateway.client.post(device["send_url"],
                                          data={"to": "+91 98765 43210", "message": "f"}))
    assert_sent(await gateway.client.get(device["send_url"],
                                         params={"to": "whatsapp:+919876543210",
                                                 "message": "q"}))
    # a LAN device that does not percent-encode '+' (it decodes to a space)
    assert_sent(await gateway.client.get(f"{device['send_url']}?to=+919876543210&message=raw"))
    assert {m["to"] for m in await sent(partner, device)} == {TO}


async def test_unicode_and_long_messages(gateway: Gateway, partner: Partner,
                                         device: dict[str, Any]) -> None:
    text = "नमस्ते 👋 — ünïcödé\nsecond line"
    assert_sent(await gateway.client.post(device["send_url"], json={"to": TO, "message": text}))
    assert_sent(await gateway.client.post(device["send_url"], data={"to": TO, "message": text}))
    assert_sent(await gateway.client.get(device["send_url"], params={"to": TO, "message": text}))
    long_text = "x" * 16384
    assert_sent(await gateway.client.post(device["send_url"],
                                          json={"to": TO, "message": long_text}))
    assert [m["message"] for m in await sent(partner, device)] == [text, text, text, long_text]


# -- bad input -----------------------------------------------------------------------------------


MISSING_FIELDS: list[tuple[dict[str, str], str]] = [
    ({}, "to"),
    ({"message": "hi"}, "to"),
    ({"to": "", "message": "hi"}, "to"),
    ({"to": TO}, "message"),
    ({"to": TO, "message": "   "}, "message"),
]

MALFORMED_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"to": [TO], "message": "hi"}, "to"),
    ({"to": TO, "message": {"text": "hi"}}, "message"),
    ({"to": TO, "message": True}, "message"),
    ({"to": TO, "message": "x" * 16385}, "message"),
    ({"to": "9" * 41, "message": "hi"}, "to"),
]

BAD_PHONES = ["12345", "abc", "+1 555 0100", "whatsapp:", "91987654321098765", "+",
              "91-CALL-ME"]

UNSUPPORTED: list[tuple[str, bytes]] = [
    ("text/plain", b"to=919876543210&message=hi"),
    ("application/xml", b"<send><to>919876543210</to></send>"),
    ("application/octet-stream", b"\x00\x01\x02"),
    ("image/png", b"\x89PNG\r\n\x1a\n"),
]


async def test_bad_input_is_refused_and_nothing_is_sent(gateway: Gateway, partner: Partner,
                                                        device: dict[str, Any],
                                                        subtests: pytest.Subtests) -> None:
    url = device["send_url"]
    for params, field in MISSING_FIELDS:
        with subtests.test("missing field, 400 naming it", params=params):
            for r in (await gateway.client.post(url, json=params),
                      await gateway.client.post(url, data=params),
                      await gateway.client.get(url, params=params)):
                assert_error(r, 400, "missing_field", field)
    for body, field in MALFORMED_FIELDS:
        with subtests.test("malformed field, 400 naming it", body=str(body)[:60]):
            r = await gateway.client.post(url, json=body)
            assert_error(r, 400, "invalid_field", field)
    for to in BAD_PHONES:
        with subtests.test("bad phone, 422", to=to):
            r = await gateway.client.post(url, json={"to": to, "message": "hi"})
            assert_error(r, 422, "invalid_phone", "to")
            r = await gateway.client.get(url, params={"to": to, "message": "hi"})
            assert_error(r, 422, "invalid_phone", "to")
    for content in (b"{", b'{"to": }', b"[1]", b'"to"'):
        with subtests.test("bad JSON, 400", content=content):
            r = await gateway.client.post(url, content=content,
                                          headers={"content-type": "application/json"})
            assert_error(r, 400, "invalid_json")
    for ctype, content in UNSUPPORTED:
        with subtests.test("unsupported content type, 400", ctype=ctype):
            r = await gateway.client.post(url, content=content, headers={"content-type": ctype})
            body = assert_error(r, 400, "unsupported_media_type")
            assert ctype in body["message"]
    with subtests.test("multipart with two files, 400"):
        r = await gateway.client.post(url, data={"to": TO, "message": "x"},
                                      files=[("file", ("a.txt", b"hello", "text/plain")),
                                             ("file", ("b.txt", b"hello", "text/plain"))])
        assert_error(r, 400, "bad_request")
    with subtests.test("multipart with a file part of another name, 400"):
        r = await gateway.client.post(url, data={"to": TO, "message": "x"},
                                      files={"photo": ("a.txt", b"hello", "text/plain")})
        assert_error(r, 400, "invalid_field", "photo")
    assert await sent(partner, device) == []
    assert (await message_stats(partner))["total"] == 0


# -- the token is the credential -------------------------------------------------------------------


async def test_unknown_or_malformed_token_is_404(gateway: Gateway, partner: Partner,
                                                 device: dict[str, Any]) -> None:
    token = device["device_token"]
    for bad in ("dt_garbage", "garbage", new_token("dt"), partner.key, device["user_token"],
                token[:-1], token.upper(), token + "0", "dt_" + "0" * 39):
        url = f"/wa/{bad}/send"
        assert_error(await gateway.client.post(url, json={"to": TO, "message": "x"}), 404,
                     "device_not_found")
        assert_error(await gateway.client.get(url, params={"to": TO, "message": "x"}), 404,
                     "device_not_found")
    # the token is checked before anything in the request
    assert_error(await gateway.client.post(f"/wa/{new_token('dt')}/send", content=b"{",
                                           headers={"content-type": "application/json"}),
                 404, "device_not_found")
    assert_error(await gateway.client.get(f"/wa/{new_token('dt')}/send"), 404,
                 "device_not_found")
    assert await sent(partner, device) == []


async def test_no_auth_header_needed_and_partner_key_is_ignored(gateway: Gateway,
                                                                partner: Partner,
                                                                device: dict[str, Any]) -> None:
    r = await gateway.client.post(device["send_url"], json={"to": TO, "message": "x"},
                                  headers={"x-api-key": "garbage"})
    assert_sent(r)


# -- device state --------------------------------------------------------------------------------


async def test_send_on_a_device_that_is_not_linked_is_409_naming_its_status(
        gateway: Gateway, partner: Partner) -> None:
    device = await partner.create_device()
    status = (await partner.status(device["session_id"]))["status"]
    r = await gateway.client.post(device["send_url"], json={"to": TO, "message": "x"})
    assert_not_linked(r, status)
    r = await gateway.client.get(device["send_url"], params={"to": TO, "message": "x"})
    assert_not_linked(r, status)
    assert (await message_stats(partner))["total"] == 0  # nothing queued


async def test_input_is_checked_before_the_device_state(gateway: Gateway,
                                                        partner: Partner) -> None:
    device = await partner.create_device()
    r = await gateway.client.post(device["send_url"], json={"to": "12", "message": "x"})
    assert_error(r, 422, "invalid_phone", "to")
    r = await gateway.client.post(device["send_url"], json={"to": TO})
    assert_error(r, 400, "missing_field", "message")


# -- body size -----------------------------------------------------------------------------------


async def test_body_over_the_limit_is_413_with_content_length(gateway: Gateway,
                                                              partner: Partner,
                                                              device: dict[str, Any]) -> None:
    limit = gateway.config.server.max_body_bytes
    big = b'{"to":"919876543210","message":"' + b"x" * limit + b'"}'
    r = await gateway.client.post(device["send_url"], content=big,
                                  headers={"content-type": "application/json"})
    body = assert_error(r, 413, "payload_too_large")
    assert body["limit"] == limit
    r = await gateway.client.post(device["send_url"], data={"to": TO, "message": "x" * limit})
    assert_error(r, 413, "payload_too_large")
    # just under the limit is fine (extra fields are ignored)
    padded = {"to": TO, "message": "ok", "pad": "p" * (limit - 100)}
    assert_sent(await gateway.client.post(device["send_url"], json=padded))
    assert [m["message"] for m in await sent(partner, device)] == ["ok"]
    assert (await message_stats(partner))["total"] == 1


async def test_body_over_the_limit_is_413_when_chunked(gateway: Gateway, partner: Partner,
                                                       device: dict[str, Any]) -> None:
    limit = gateway.config.server.max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"to":"919876543210","message":"'
        for _ in range(limit // 8192 + 2):
            yield b"x" * 8192
        yield b'"}'

    r = await gateway.client.post(device["send_url"], content=chunks(),
                                  headers={"content-type": "application/json"})
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert_error(r, 413, "payload_too_large")

    async def form_chunks() -> AsyncIterator[bytes]:
        yield f"to={TO}&message=".encode()
        for _ in range(limit // 8192 + 2):
            yield b"x" * 8192

    r = await gateway.client.post(device["send_url"], content=form_chunks(), headers={
        "content-type": "application/x-www-form-urlencoded"})
    assert_error(r, 413, "payload_too_large")

    async def small() -> AsyncIterator[bytes]:
        yield b'{"to":"919876543210",'
        yield b'"message":"chunked"}'

    assert_sent(await gateway.client.post(device["send_url"], content=small(),
                                          headers={"content-type": "application/json"}))
    assert [m["message"] for m in await sent(partner, device)] == ["chunked"]


async def test_413_on_partner_routes_too(gateway: Gateway, partner: Partner) -> None:
    limit = gateway.config.server.max_body_bytes
    r = await partner.post("/partner/users", json={"label": "x" * limit})
    assert_error(r, 413, "payload_too_large")
    r = await gateway.client.post("/partner/register", json={"name": "x" * limit,
                                                             "email": "a@b.c"})
    assert_error(r, 413, "payload_too_large")


# -- what happens to the message ---------------------------------------------------------------


async def test_receipts_advance_the_stored_message(gateway: Gateway, partner: Partner,
                                                   device: dict[str, Any]) -> None:
    r = await gateway.client.post(device["send_url"], json={"to": TO, "message": "x"})
    assert_sent(r)
    stats = await message_stats(partner)
    assert stats["total"] == 1
    assert sum(stats.get(s, 0) for s in ("sent", "delivered", "read")) == 1

    async def read() -> bool:
        return (await message_stats(partner)).get("read") == 1

    await wait_for(read)


async def test_delivered_without_read(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path / "data", env={"WAGATE_SIMULATED_READ_SECONDS": "-1"})
    try:
        partner = await gw.register()
        device = await partner.linked_device()
        assert_sent(await gw.client.post(device["send_url"], json={"to": TO, "message": "x"}))

        async def delivered() -> bool:
            return (await message_stats(partner)).get("delivered") == 1

        await wait_for(delivered)
        assert "read" not in await message_stats(partner)
    finally:
        await gw.stop()


async def test_whatsapp_refusing_a_send_is_502_and_counted_failed(tmp_path: Path) -> None:
    # one attempt: the outbox (if any) must not retry, so the refusal is final at once
    gw = await start_gateway(tmp_path / "data", env={"WAGATE_DELIVERY_MAX_ATTEMPTS": "1"})
    try:
        partner = await gw.register()
        device = await partner.linked_device()
        sid = device["session_id"]
        r = await partner.post(f"/sim/devices/{sid}/faults", json={"send_failure_rate": 1})
        assert r.status_code == 200, r.text
        r = await gw.client.post(device["send_url"], json={"to": TO, "message": "x"})
        body = assert_error(r, 502, str(r.json().get("code")))
        assert body["code"] in SEND_FAILED_CODES
        assert body["message_id"].startswith("3EB0")
        assert await sent(partner, device) == []
        assert await message_stats(partner) == {"total": 1, "failed": 1}
        assert (await partner.status(sid))["status"] == "connected"

        r = await partner.post(f"/sim/devices/{sid}/faults", json={"send_failure_rate": 0})
        assert r.status_code == 200, r.text
        assert_sent(await gw.client.post(device["send_url"], json={"to": TO, "message": "y"}))
        assert [m["message"] for m in await sent(partner, device)] == ["y"]
        assert (await message_stats(partner))["total"] == 2
    finally:
        await gw.stop()
