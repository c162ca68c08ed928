"""End users: create, list (tokens shown again), and a user's devices with their send URLs."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.tokens import new_token
from tests.conftest import Gateway, Partner
from tests.test_api_partners import assert_error


async def test_create_user_returns_a_user_token(partner: Partner) -> None:
    r = await partner.post("/partner/users", json={"label": "John Doe",
                                                   "email": "john@example.com"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["type"] == "success"
    assert body["user_token"].startswith("pu_")
    assert len(body["user_token"]) >= 3 + 22


async def test_email_is_optional_for_users(partner: Partner) -> None:
    for body in ({"label": "No email"}, {"label": "Blank email", "email": ""},
                 {"label": "Null email", "email": None}):
        r = await partner.post("/partner/users", json=body)
        assert r.status_code == 201, r.text
    users = (await partner.get("/partner/users")).json()["users"]
    assert [u["email"] for u in users] == ["", "", ""]


BAD_USER_FIELDS: list[tuple[dict[str, Any], str, str]] = [
    ({}, "label", "missing_field"),
    ({"email": "john@example.com"}, "label", "missing_field"),
    ({"label": "  ", "email": "john@example.com"}, "label", "missing_field"),
    ({"label": ["John"]}, "label", "invalid_field"),
    ({"label": True}, "label", "invalid_field"),
    ({"label": "x" * 201}, "label", "invalid_field"),
    ({"label": "John", "email": "john"}, "email", "invalid_field"),
    ({"label": "John", "email": "john@"}, "email", "invalid_field"),
    ({"label": "John", "email": {"a": "b"}}, "email", "invalid_field"),
]


async def test_create_user_rejects_bad_input(partner: Partner, subtests: pytest.Subtests) -> None:
    for body, field, code in BAD_USER_FIELDS:
        with subtests.test(body=str(body)[:60]):
            r = await partner.post("/partner/users", json=body)
            assert_error(r, 400, code, field)
    for content in (b"", b"label=John", b"[]", b'["label"]', b"{bad"):
        with subtests.test(content=content):
            r = await partner.post("/partner/users", content=content,
                                   headers={"content-type": "application/json"})
            assert_error(r, 400, "invalid_json")
    assert (await partner.get("/partner/users")).json()["users"] == []


async def test_list_users_shows_each_token_again_in_creation_order(partner: Partner) -> None:
    assert (await partner.get("/partner/users")).json() == {"type": "success", "users": []}
    alice = await partner.create_user("Alice")
    bob = await partner.create_user("Bob")
    await partner.create_device(alice, name="a1")
    await partner.create_device(alice, name="a2")

    r = await partner.get("/partner/users")
    assert r.status_code == 200, r.text
    users = r.json()["users"]
    assert [u["label"] for u in users] == ["Alice", "Bob"]
    assert [u["user_token"] for u in users] == [alice, bob]
    assert [u["devices"] for u in users] == [2, 0]
    assert users[0]["email"] == "john@example.com"
    assert all(u["created_at"].endswith("Z") for u in users)


async def test_listed_user_token_works_for_the_devices_route(partner: Partner) -> None:
    created = await partner.create_device(name="John iPhone")
    listed = (await partner.get("/partner/users")).json()["users"][0]["user_token"]
    assert listed == created["user_token"]

    r = await partner.get(f"/partner/users/{listed}/devices")
    assert r.status_code == 200, r.text
    devices = r.json()["devices"]
    assert len(devices) == 1
    d = devices[0]
    assert d["session_id"] == created["session_id"]
    assert d["device_name"] == "John iPhone"
    assert d["send_url"] == created["send_url"]
    assert d["qr_url"] == created["qr_url"]
    assert d["status"] in ("new", "pairing")
    assert d["phone"] is None
    assert d["last_error"] is None
    assert d["since"].endswith("Z")
    assert d["created_at"].endswith("Z")

    # and the listed token creates devices like the original one does
    r = await partner.post("/partner/devices", json={"device_name": "Second"},
                           headers={"x-user-token": listed})
    assert r.status_code == 201, r.text


async def test_user_devices_lists_only_that_users_devices_with_live_status(
        gateway: Gateway, partner: Partner) -> None:
    alice = await partner.create_user("Alice")
    bob = await partner.create_user("Bob")
    a1 = await partner.create_device(alice, name="a1")
    a2 = await partner.create_device(alice, name="a2")
    b1 = await partner.create_device(bob, name="b1")
    await partner.link(a1["session_id"], phone="919812345678")

    devices = (await partner.get(f"/partner/users/{alice}/devices")).json()["devices"]
    assert [d["session_id"] for d in devices] == [a1["session_id"], a2["session_id"]]
    assert devices[0]["status"] == "connected"
    assert devices[0]["phone"] == "919812345678"
    assert devices[0]["send_url"] == a1["send_url"]
    assert devices[1]["send_url"] == a2["send_url"]

    # the listed send URL sends
    r = await gateway.client.post(devices[0]["send_url"],
                                  json={"to": "919876543210", "message": "from listing"})
    assert r.status_code == 200, r.text

    devices = (await partner.get(f"/partner/users/{bob}/devices")).json()["devices"]
    assert [d["session_id"] for d in devices] == [b1["session_id"]]

    # a deleted device leaves the listing
    r = await partner.delete(f"/partner/devices/{a2['session_id']}")
    assert r.status_code == 200, r.text
    devices = (await partner.get(f"/partner/users/{alice}/devices")).json()["devices"]
    assert [d["session_id"] for d in devices] == [a1["session_id"]]


async def test_user_without_devices_has_an_empty_list(partner: Partner) -> None:
    user = await partner.create_user()
    r = await partner.get(f"/partner/users/{user}/devices")
    assert r.status_code == 200, r.text
    assert r.json() == {"type": "success", "devices": []}


async def test_unknown_user_token_is_404(partner: Partner, subtests: pytest.Subtests) -> None:
    user = await partner.create_user()
    for token in ("pu_garbage", "garbage", new_token("pu"), new_token("pk"), new_token("dt"),
                  "pu_" + "0" * 39, partner.key, user.upper(), user[:-1], user + "x"):
        with subtests.test(token=token):
            r = await partner.get(f"/partner/users/{token}/devices")
            assert_error(r, 404, "user_not_found")
