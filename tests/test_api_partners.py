"""Partner registration, /partner/me, /healthz, authentication on every partner route, and the
error envelope for anything the router itself refuses (unknown route, wrong method)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway.tokens import new_token
from tests.conftest import Gateway, Partner, wait_for

JSON_TYPE = "application/json"


def assert_error(r: httpx.Response, status: int, code: str,
                 field: str | None = None) -> dict[str, Any]:
    """The seed's error envelope, as JSON, never HTML and never a traceback."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(JSON_TYPE), r.headers
    assert "Traceback" not in r.text
    assert "<html" not in r.text.lower()
    body: dict[str, Any] = r.json()
    assert body["type"] == "error", body
    assert body["code"] == code, body
    assert isinstance(body["message"], str), body
    assert body["message"], body
    if field is not None:
        assert body.get("field") == field, body
        assert field in body["message"], body
    return body


# A send to a device that is not linked (pairing, unlinked, logged out): 409 naming the status.
# The foundation called it device_not_connected; the outbox (issue 4) calls it device_not_linked.
NOT_LINKED_CODES = ("device_not_linked", "device_not_connected")
# WhatsApp refused the message for good (after the outbox's last attempt, if there is one).
SEND_FAILED_CODES = ("message_failed", "send_failed")


def assert_not_linked(r: httpx.Response, status: str) -> dict[str, Any]:
    body = assert_error(r, 409, str(r.json().get("code")))
    assert body["code"] in NOT_LINKED_CODES, body
    assert body["status"] == status, body
    assert status in body["message"], body
    return body


def partner_routes(session_id: str, user_token: str) -> list[tuple[str, str, Any]]:
    """Every route guarded by x-api-key: (method, path, JSON body that would be valid)."""
    dev = f"/partner/devices/{session_id}"
    sim = f"/sim/devices/{session_id}"
    return [
        ("GET", "/partner/me", None),
        ("POST", "/partner/users", {"label": "Jane", "email": "jane@example.com"}),
        ("GET", "/partner/users", None),
        ("GET", f"/partner/users/{user_token}/devices", None),
        ("POST", "/partner/devices", {"device_name": "Jane's phone"}),
        ("GET", f"{dev}/qr", None),
        ("GET", f"{dev}/status", None),
        ("POST", f"{dev}/pair", {"phone": "919876543210"}),
        ("POST", f"{dev}/restart", None),
        ("POST", f"{dev}/logout", None),
        ("POST", f"{dev}/rotate-token", None),
        ("DELETE", dev, None),
        ("GET", sim, None),
        ("POST", f"{sim}/scan", {"phone": "919876543210"}),
        ("POST", f"{sim}/inbound", {"from": "919812345678", "message": "hi"}),
        ("GET", f"{sim}/sent", None),
        ("POST", f"{sim}/unlink", None),
        ("POST", f"{sim}/ban", {"seconds": 60}),
        ("POST", f"{sim}/drop", None),
        ("POST", f"{sim}/faults", {"send_failure_rate": 1}),
    ]


async def call(client: httpx.AsyncClient, method: str, path: str, body: Any,
               headers: dict[str, str]) -> httpx.Response:
    if body is None:
        return await client.request(method, path, headers=headers)
    return await client.request(method, path, json=body, headers=headers)


# -- registration ----------------------------------------------------------------------------


async def test_register_returns_a_partner_key(gateway: Gateway) -> None:
    r = await gateway.client.post("/partner/register", json={
        "name": "ABC Reseller", "email": "abc@reseller.com", "domain": "api.reseller.com"})
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith(JSON_TYPE)
    body = r.json()
    assert body["type"] == "success"
    key = body["api_key"]
    assert key.startswith("pk_")
    assert len(key) >= 3 + 22  # >= 128 bits of base62
    me = await gateway.client.get("/partner/me", headers={"x-api-key": key})
    assert me.status_code == 200, me.text
    assert me.json()["name"] == "ABC Reseller"
    assert me.json()["email"] == "abc@reseller.com"
    assert me.json()["domain"] == "api.reseller.com"


async def test_register_twice_gives_distinct_keys_and_domain_is_optional(
        gateway: Gateway) -> None:
    keys = set()
    for _ in range(2):
        r = await gateway.client.post("/partner/register",
                                      json={"name": "Same", "email": "same@example.com"})
        assert r.status_code == 201, r.text
        keys.add(r.json()["api_key"])
    assert len(keys) == 2


REGISTER_BAD_FIELDS: list[tuple[dict[str, Any], str, str]] = [
    ({"email": "abc@reseller.com"}, "name", "missing_field"),
    ({"name": "", "email": "abc@reseller.com"}, "name", "missing_field"),
    ({"name": "   ", "email": "abc@reseller.com"}, "name", "missing_field"),
    ({"name": None, "email": "abc@reseller.com"}, "name", "missing_field"),
    ({"name": ["x"], "email": "abc@reseller.com"}, "name", "invalid_field"),
    ({"name": {"a": 1}, "email": "abc@reseller.com"}, "name", "invalid_field"),
    ({"name": "x" * 201, "email": "abc@reseller.com"}, "name", "invalid_field"),
    ({"name": "ABC"}, "email", "missing_field"),
    ({"name": "ABC", "email": "not-an-email"}, "email", "invalid_field"),
    ({"name": "ABC", "email": "@reseller.com"}, "email", "invalid_field"),
    ({"name": "ABC", "email": "abc@"}, "email", "invalid_field"),
    ({"name": "ABC", "email": "a b@reseller.com"}, "email", "invalid_field"),
    ({"name": "ABC", "email": "abc@reseller.com", "domain": "d" * 300}, "domain",
     "invalid_field"),
]

NOT_A_JSON_OBJECT = [
    b"", b"   ", b"not json", b"{", b'{"name": "x",}', b"[1, 2]",
    b'[{"name": "ABC", "email": "abc@reseller.com"}]', b'"a string"', b"42", b"null",
    b"\xff\xfe\x00garbage", b'{"name": NaN}', b"[" * 5000 + b"]" * 5000,
]


async def test_register_rejects_bad_fields(gateway: Gateway, subtests: pytest.Subtests) -> None:
    for body, field, code in REGISTER_BAD_FIELDS:
        with subtests.test(body=str(body)[:60]):
            r = await gateway.client.post("/partner/register", json=body)
            assert_error(r, 400, code, field)


async def test_register_rejects_a_body_that_is_not_a_json_object(
        gateway: Gateway, subtests: pytest.Subtests) -> None:
    for content in NOT_A_JSON_OBJECT:
        with subtests.test(content=content[:30]):
            r = await gateway.client.post("/partner/register", content=content,
                                          headers={"content-type": "application/json"})
            body = assert_error(r, 400, "invalid_json")
            assert "JSON" in body["message"]
    with subtests.test("a form body is not JSON"):
        r = await gateway.client.post("/partner/register",
                                      data={"name": "ABC", "email": "abc@reseller.com"})
        assert_error(r, 400, "invalid_json")


# -- /partner/me -------------------------------------------------------------------------------


async def test_me_of_a_new_partner_has_zero_counts(partner: Partner) -> None:
    r = await partner.get("/partner/me")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "success"
    assert body["status"] == "active"
    assert body["created_at"].endswith("Z")
    assert body["stats"] == {"users": 0, "devices": {"total": 0}, "messages": {"total": 0}}
    assert "api_key" not in body
    assert partner.key not in r.text


async def test_me_counts_users_devices_by_status_and_messages(gateway: Gateway,
                                                              partner: Partner) -> None:
    user = await partner.create_user("Alice")
    await partner.create_user("Bob")
    linked = await partner.create_device(user, name="linked")
    await partner.link(linked["session_id"])
    pairing = await partner.create_device(user, name="pairing")
    deleted = await partner.create_device(user, name="deleted")
    r = await partner.delete(f"/partner/devices/{deleted['session_id']}")
    assert r.status_code == 200, r.text

    for text in ("one", "two"):
        r = await gateway.client.post(linked["send_url"],
                                      json={"to": "919812345678", "message": text})
        assert r.status_code == 200, r.text

    stats = (await partner.get("/partner/me")).json()["stats"]
    assert stats["users"] == 2
    assert stats["devices"]["total"] == 2
    assert stats["devices"]["connected"] == 1
    pairing_status = (await partner.status(pairing["session_id"]))["status"]
    assert stats["devices"][pairing_status] == 1
    assert "deleted" not in stats["devices"]
    assert stats["messages"]["total"] == 2
    assert sum(v for k, v in stats["messages"].items() if k != "total") == 2

    async def all_read() -> bool:
        s = (await partner.get("/partner/me")).json()["stats"]
        return bool(s["messages"].get("read") == 2)

    await wait_for(all_read)


async def test_me_counts_are_per_partner(gateway: Gateway, partner: Partner) -> None:
    await partner.create_device()
    other = await gateway.register("Other", "other@example.com")
    stats = (await other.get("/partner/me")).json()["stats"]
    assert stats == {"users": 0, "devices": {"total": 0}, "messages": {"total": 0}}
    assert (await partner.get("/partner/me")).json()["stats"]["users"] == 1


# -- authentication on every partner route ---------------------------------------------------


async def test_every_partner_route_needs_an_api_key(gateway: Gateway, partner: Partner) -> None:
    device = await partner.create_device()
    for method, path, body in partner_routes(device["session_id"], device["user_token"]):
        headers = {"x-user-token": device["user_token"]}
        r = await call(gateway.client, method, path, body, headers)
        assert_error(r, 401, "missing_api_key")
        r = await call(gateway.client, method, path, body, {**headers, "x-api-key": ""})
        assert_error(r, 401, "missing_api_key")
    # nothing happened to the device
    status = await partner.status(device["session_id"])
    assert status["status"] in ("pairing", "new")


async def test_every_partner_route_refuses_an_unknown_api_key(gateway: Gateway,
                                                              partner: Partner) -> None:
    device = await partner.create_device()
    # a malformed key and a well-formed one (valid checksum) that no partner has
    for key in ("pk_garbage", new_token("pk")):
        for method, path, body in partner_routes(device["session_id"], device["user_token"]):
            headers = {"x-api-key": key, "x-user-token": device["user_token"]}
            r = await call(gateway.client, method, path, body, headers)
            assert key not in assert_error(r, 401, "invalid_api_key")["message"]
    assert (await partner.status(device["session_id"]))["status"] in ("pairing", "new")


GARBAGE_KEYS: list[str | bytes] = [
    "garbage", "pk_", "Bearer pk_x", new_token("pu"), new_token("dt"), "pk_" + "A" * 39,
    "x" * 5000, "pk_\u00e9t\u00e9".encode("latin-1"), "pk_\u00e9t\u00e9".encode(),
]


async def test_garbage_api_keys_are_401(gateway: Gateway, subtests: pytest.Subtests) -> None:
    for key in GARBAGE_KEYS:
        with subtests.test(key=key[:20]):
            r = await gateway.client.get("/partner/me", headers={"x-api-key": key})
            assert_error(r, 401, "invalid_api_key")


async def test_api_key_variants(gateway: Gateway, partner: Partner) -> None:
    # a changed character is refused (the checksum catches it), and so is a changed case
    tampered = partner.key[:-1] + ("A" if partner.key[-1] != "A" else "B")
    r = await gateway.client.get("/partner/me", headers={"x-api-key": tampered})
    assert_error(r, 401, "invalid_api_key")
    r = await gateway.client.get("/partner/me", headers={"x-api-key": partner.key.upper()})
    assert_error(r, 401, "invalid_api_key")
    # the key goes in the header, not in the query string
    r = await gateway.client.get("/partner/me", params={"x-api-key": partner.key})
    assert_error(r, 401, "missing_api_key")


# -- /healthz ----------------------------------------------------------------------------------


async def test_healthz(gateway: Gateway) -> None:
    r = await gateway.client.get("/healthz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert body["driver"] == "simulated"
    assert body["sessions_ready"] is True
    assert body["version"]


# -- the router's own errors -----------------------------------------------------------------


UNKNOWN_ROUTES = [
    ("GET", "/"),
    ("GET", "/nope"),
    ("GET", "/partner"),
    ("GET", "/partner/devices/wa_x/unknown"),
    ("POST", "/partner/users/x"),
    ("GET", "/wa/dt_x"),
    ("GET", "/wa/dt_x/send/extra"),
    ("GET", "/static/../../etc/passwd"),
    ("GET", "/sim"),
]

WRONG_METHODS = [
    ("GET", "/partner/register"),
    ("PUT", "/partner/register"),
    ("DELETE", "/partner/users"),
    ("PATCH", "/partner/me"),
    ("GET", "/partner/devices"),
    ("GET", "/partner/devices/wa_x/pair"),
    ("POST", "/partner/devices/wa_x/status"),
    ("POST", "/partner/devices/wa_x/qr"),
    ("PUT", "/partner/devices/wa_x"),
    ("GET", "/partner/devices/wa_x/logout"),
    ("PUT", "/wa/dt_x/send"),
    ("DELETE", "/wa/dt_x/send"),
    ("DELETE", "/sim/devices/wa_x"),
    ("GET", "/sim/devices/wa_x/scan"),
    ("POST", "/healthz"),
]


async def test_unknown_route_is_a_json_404_and_wrong_method_a_json_405(
        partner: Partner, subtests: pytest.Subtests) -> None:
    for method, path in UNKNOWN_ROUTES:
        with subtests.test(method=method, path=path):
            r = await partner.client.request(method, path, headers=partner.headers)
            assert_error(r, 404, "not_found")
    for method, path in WRONG_METHODS:
        with subtests.test(method=method, path=path):
            r = await partner.client.request(method, path, headers=partner.headers)
            assert_error(r, 405, "method_not_allowed")
            assert r.headers.get("allow")
