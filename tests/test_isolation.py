"""Partners are walled off: another partner's session ids and user tokens answer 404 (never 403,
and exactly like an id that does not exist), on every route, and change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway, Partner, start_gateway, wait_for
from tests.test_api_partners import assert_error, call, partner_routes

TO = "919876543210"
MISSING_SESSION = "wa_0000000000000000"
MISSING_USER = "pu_" + "0" * 39

def foreign_routes(session_id: str, user_token: str) -> list[tuple[str, str, Any, str]]:
    """Every route that takes a partner-scoped id, with the 404 code it must give."""
    out = []
    for method, path, body in partner_routes(session_id, user_token):
        # POST /partner/devices takes the user token in a header, the listing in the path
        if path == "/partner/devices" or path.startswith("/partner/users/"):
            out.append((method, path, body, "user_not_found"))
        elif session_id in path:
            out.append((method, path, body, "device_not_found"))
    return out


async def snapshot(partner: Partner, session_ids: list[str]) -> dict[str, Any]:
    """What a partner can see of its own things (minus timestamps that move on their own)."""
    me = (await partner.get("/partner/me")).json()["stats"]
    users = (await partner.get("/partner/users")).json()["users"]
    devices = {}
    for sid in session_ids:
        st = await partner.status(sid)
        devices[sid] = {k: st[k] for k in ("status", "phone", "send_url", "device_name")}
        sim = (await partner.get(f"/sim/devices/{sid}")).json()
        devices[sid]["sim"] = {k: sim[k] for k in ("linked", "phone", "banned_until")}
        devices[sid]["sent"] = (await partner.get(f"/sim/devices/{sid}/sent")).json()["messages"]
    return {"me": me, "users": users, "devices": devices}


async def setup_partner(gateway: Gateway, name: str) -> tuple[Partner, dict[str, Any],
                                                               dict[str, Any]]:
    partner = await gateway.register(name, f"{name.lower()}@example.com")
    linked = await partner.linked_device(name=f"{name} linked")
    pairing = await partner.create_device(linked["user_token"], name=f"{name} pairing")
    r = await gateway.client.post(linked["send_url"], json={"to": TO, "message": "before"})
    assert r.status_code == 200, r.text

    async def settled() -> bool:  # receipts done, so the counts stand still
        return (await partner.get("/partner/me")).json()["stats"]["messages"] == {
            "total": 1, "read": 1}

    await wait_for(settled)
    return partner, linked, pairing


@pytest.fixture
async def slow_qr(tmp_path: Path) -> AsyncIterator[Gateway]:
    """QR codes that outlive the probing, so a pairing device is still pairing afterwards."""
    gw = await start_gateway(tmp_path / "data", env={"WAGATE_SIMULATED_QR_FIRST_SECONDS": "60"})
    try:
        yield gw
    finally:
        await gw.stop()


@pytest.mark.parametrize("direction", ["b_probes_a", "a_probes_b"])
async def test_foreign_ids_are_404_on_every_route_and_change_nothing(
        slow_qr: Gateway, direction: str, subtests: pytest.Subtests) -> None:
    gateway = slow_qr
    a, a_linked, a_pairing = await setup_partner(gateway, "Alpha")
    b, b_linked, b_pairing = await setup_partner(gateway, "Beta")
    owner, victim_linked, victim_pairing, prober, prober_user = (
        (a, a_linked, a_pairing, b, b_linked["user_token"]) if direction == "b_probes_a"
        else (b, b_linked, b_pairing, a, a_linked["user_token"]))
    victim_ids = [victim_linked["session_id"], victim_pairing["session_id"]]
    before = await snapshot(owner, victim_ids)

    for victim in (victim_linked, victim_pairing):
        routes = foreign_routes(victim["session_id"], victim["user_token"])
        missing = foreign_routes(MISSING_SESSION, MISSING_USER)
        assert len(routes) == len(missing) > 15
        for (method, path, body, code), (_, missing_path, _, _) in zip(routes, missing,
                                                                      strict=True):
            with subtests.test(method=method, path=path):
                if path == "/partner/devices":
                    foreign_headers = {**prober.headers, "x-user-token": victim["user_token"]}
                    missing_headers = {**prober.headers, "x-user-token": MISSING_USER}
                else:
                    foreign_headers = missing_headers = {**prober.headers,
                                                         "x-user-token": prober_user}
                r = await call(gateway.client, method, path, body, foreign_headers)
                assert r.status_code != 403
                foreign = assert_error(r, 404, code)
                # indistinguishable from an id that does not exist at all
                r = await call(gateway.client, method, missing_path, body, missing_headers)
                assert assert_error(r, 404, code) == foreign

    with subtests.test("the owner's devices, users and counts are untouched"):
        after = await snapshot(owner, victim_ids)
        assert after == before
        assert after["devices"][victim_linked["session_id"]]["status"] == "connected"
        assert after["devices"][victim_pairing["session_id"]]["status"] == "pairing"

    with subtests.test("the owner's send URL and pairing still work"):
        r = await gateway.client.post(victim_linked["send_url"],
                                      json={"to": TO, "message": "after"})
        assert r.status_code == 200, r.text  # no fault injected, no token rotated or deleted
        await owner.link(victim_pairing["session_id"])

    with subtests.test("the prober sees only its own things"):
        users = (await prober.get("/partner/users")).json()["users"]
        assert [u["user_token"] for u in users] == [prober_user]
        stats = (await prober.get("/partner/me")).json()["stats"]
        assert stats["users"] == 1
        assert stats["devices"]["total"] == 2


async def test_a_partner_cannot_create_devices_for_another_partners_user(
        gateway: Gateway) -> None:
    a = await gateway.register("Alpha", "alpha@example.com")
    b = await gateway.register("Beta", "beta@example.com")
    a_user = await a.create_user()
    r = await b.post("/partner/devices", json={"device_name": "sneaky"},
                     headers={"x-user-token": a_user})
    assert_error(r, 404, "user_not_found")
    assert (await a.get(f"/partner/users/{a_user}/devices")).json()["devices"] == []
    assert (await b.get("/partner/me")).json()["stats"]["devices"] == {"total": 0}
    assert (await a.get("/partner/me")).json()["stats"]["devices"] == {"total": 0}


async def test_partners_share_nothing_in_listings(gateway: Gateway) -> None:
    a = await gateway.register("Alpha", "alpha@example.com")
    b = await gateway.register("Beta", "beta@example.com")
    a_device = await a.create_device(name="alpha phone")
    assert (await b.get("/partner/users")).json()["users"] == []
    assert (await b.get("/partner/me")).json()["stats"] == {
        "users": 0, "devices": {"total": 0}, "messages": {"total": 0}}
    users = (await a.get("/partner/users")).json()["users"]
    assert [u["user_token"] for u in users] == [a_device["user_token"]]
    # a deleted device of A stays 404 for B too (no different answer once it is gone)
    r = await a.delete(f"/partner/devices/{a_device['session_id']}")
    assert r.status_code == 200, r.text
    r = await b.get(f"/partner/devices/{a_device['session_id']}/status")
    assert_error(r, 404, "device_not_found")
