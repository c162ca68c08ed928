"""Platform security: scoped API keys, rate limits, the brute-force guard, registration
policies, operator admin, suspension, audit log, and HTTP hardening."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gateway.operator import OPERATOR_HEADER, operator_token
from gateway.security.scopes import SCOPES
from gateway.services import Services
from gateway.store.sqlite import SQLiteStore
from sessions.ids import new_message_id
from tests.conftest import Gateway, Partner, start_gateway, wait_for
from tests.test_api_partners import assert_error

TO = "919876543210"


def services(gw: Gateway) -> Services:
    assert gw._server is not None
    svc: Services = gw._server.app.state.services  # type: ignore[attr-defined]  # ASGIApp
    return svc


def operator(gw: Gateway) -> dict[str, str]:
    return {OPERATOR_HEADER: operator_token(services(gw).vault)}


async def make_key(partner: Partner, name: str, scopes: list[str] | None = None,
                   **extra: Any) -> Partner:
    body: dict[str, Any] = {"name": name, **extra}
    if scopes is not None:
        body["scopes"] = scopes
    r = await partner.post("/partner/keys", json=body)
    assert r.status_code == 201, r.text
    return Partner(r.json()["api_key"], partner.client)


Starter = Callable[..., Awaitable[Gateway]]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Starter]:
    """Start a gateway with the given environment (stopped after the test)."""
    started: list[Gateway] = []

    async def go(**env: str) -> Gateway:
        gw = await start_gateway(tmp_path / f"data{len(started)}", env=env)
        started.append(gw)
        return gw

    try:
        yield go
    finally:
        for gw in started:
            await gw.stop()


# -- API keys --------------------------------------------------------------------------------


async def test_registration_key_has_every_scope_and_keys_are_listed_without_secrets(
        gateway: Gateway, partner: Partner) -> None:
    r = await partner.get("/partner/keys")
    assert r.status_code == 200, r.text
    [primary] = r.json()["keys"]
    assert primary["name"] == "primary"
    assert primary["primary"]
    assert primary["current"]
    assert primary["scopes"] == list(SCOPES)
    assert primary["hint"] == f"pk_…{partner.key[-4:]}"
    me = (await partner.get("/partner/me")).json()
    assert me["key"]["key_id"] == primary["key_id"]

    reader = await make_key(partner, "reader", ["devices:read", "messages:read"])
    keys = (await partner.get("/partner/keys")).json()["keys"]
    assert [k["name"] for k in keys] == ["primary", "reader"]
    assert reader.key not in r.text
    assert all(reader.key not in str(k) for k in keys)
    assert keys[1]["scopes"] == ["devices:read", "messages:read"]
    assert keys[1]["last_used_at"] is None
    assert (await reader.get("/partner/me")).status_code == 200
    keys = (await partner.get("/partner/keys")).json()["keys"]
    assert keys[1]["last_used_at"] is not None  # first use recorded; later ones coalesced


async def test_a_missing_scope_is_403_naming_it(gateway: Gateway, partner: Partner) -> None:
    device = await partner.create_device()
    sid = device["session_id"]
    reader = await make_key(partner, "reader", ["devices:read"])
    r = await reader.get(f"/partner/devices/{sid}/status")
    assert r.status_code == 200, r.text
    assert r.json()["send_url"] is None  # the send URL is a sending credential
    assert (await partner.status(sid))["send_url"] == device["send_url"]
    r = await reader.post(f"/partner/devices/{sid}/restart")
    body = assert_error(r, 403, "insufficient_permissions")
    assert body["scope"] == "devices:write"
    assert "devices:write" in body["message"]
    assert_error(await reader.get("/partner/users"), 403, "insufficient_permissions")
    assert_error(await reader.get("/partner/keys"), 403, "insufficient_permissions")


async def test_keys_cannot_mint_wider_keys_and_are_capped(gateway: Gateway,
                                                          partner: Partner) -> None:
    manager = await make_key(partner, "manager", ["keys:manage", "devices:read"])
    r = await manager.post("/partner/keys", json={"name": "wider", "scopes": ["devices:write"]})
    assert assert_error(r, 403, "insufficient_permissions")["scope"] == "devices:write"
    r = await manager.post("/partner/keys", json={"name": "all", "scopes": ["*"]})
    assert_error(r, 403, "insufficient_permissions")
    same = await make_key(manager, "same")  # no scopes given: the creator's own
    me = (await same.get("/partner/me")).json()
    assert me["key"]["scopes"] == ["devices:read", "keys:manage"]
    for i in range(7):
        await make_key(partner, f"k{i}", ["users:read"])
    r = await partner.post("/partner/keys", json={"name": "eleventh"})
    assert_error(r, 409, "key_limit_reached")
    r = await partner.post("/partner/keys", json={"name": "x", "scopes": ["nope"]})
    assert_error(r, 400, "invalid_field", "scopes")
    r = await partner.post("/partner/keys", json={"name": "x", "expires_at": "yesterday"})
    assert_error(r, 400, "invalid_field", "expires_at")


async def test_revoked_and_expired_keys_stop_working(gateway: Gateway, partner: Partner) -> None:
    temp = await make_key(partner, "temp", ["users:read"])
    keys = (await partner.get("/partner/keys")).json()["keys"]
    key_id = keys[1]["key_id"]
    r = await partner.delete(f"/partner/keys/{key_id}")
    assert r.status_code == 200, r.text
    assert_error(await temp.get("/partner/me"), 401, "invalid_api_key")
    assert_error(await partner.delete(f"/partner/keys/{key_id}"), 404, "key_not_found")

    soon = await make_key(partner, "soon", ["users:read"], expires_at=time.time() + 3600)
    assert (await soon.get("/partner/users")).status_code == 200
    with sqlite3.connect(services(gateway).config.database_path) as db:
        db.execute("UPDATE api_keys SET expires_at = ? WHERE name = 'soon'", (time.time() - 1,))
    assert_error(await soon.get("/partner/users"), 401, "api_key_expired")
    listed = {k["name"]: k for k in (await partner.get("/partner/keys")).json()["keys"]}
    assert listed["soon"]["expired"] is True


async def test_the_last_key_that_manages_keys_cannot_be_revoked(gateway: Gateway,
                                                                partner: Partner) -> None:
    [primary] = (await partner.get("/partner/keys")).json()["keys"]
    assert_error(await partner.delete(f"/partner/keys/{primary['key_id']}"), 409,
                 "last_manage_key")
    second = await make_key(partner, "second")
    r = await second.delete(f"/partner/keys/{primary['key_id']}")
    assert r.status_code == 200, r.text
    assert_error(await partner.get("/partner/me"), 401, "invalid_api_key")
    assert (await second.get("/partner/me")).status_code == 200


async def test_rotate_key_from_the_cli_replaces_only_the_primary_key(
        gateway: Gateway, partner: Partner) -> None:
    other = await make_key(partner, "other", ["users:read"])
    store = services(gateway).store
    [p] = await store.list_partners()
    await store.set_partner_key(p.id, "f" * 64)  # what `wagate partners rotate-key` does
    assert_error(await partner.get("/partner/me"), 401, "invalid_api_key")
    assert (await other.get("/partner/users")).status_code == 200
    names = [k.name for k in await store.list_api_keys(p.id)]
    assert names == ["other", "primary"] or sorted(names) == ["other", "primary"]


async def test_migration_makes_existing_keys_primary_keys_with_every_scope(
        tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    old = SQLiteStore(path, target_version=7)
    await old.open()
    await old.create_partner("A", "a@x", "", "h" * 64)
    await old.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        found = await store.api_key_by_hash("h" * 64)
        assert found is not None
        key, partner = found
        assert (key.name, key.scopes, key.is_primary, partner.name) == (
            "primary", ("*",), True, "A")
        assert await store.partner_by_key_hash("h" * 64) == partner
        pending = await store.create_partner("B", "b@x", "", "g" * 64, "pending")
        found = await store.api_key_by_hash("g" * 64)
        assert found is not None
        assert found[1] == pending
        assert await store.partner_by_key_hash("g" * 64) is None  # the console: active only
    finally:
        await store.close()


# -- rate limits ------------------------------------------------------------------------------


async def test_api_key_and_send_url_limits_with_headers(start: Starter) -> None:
    gw = await start(WAGATE_SECURITY_API_RATE_PER_MINUTE="3",
                     WAGATE_SECURITY_SEND_RATE_PER_MINUTE="2")
    partner = await gw.register()
    seen = []
    for _ in range(3):
        r = await partner.get("/partner/me")
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit"] == "3"
        seen.append(int(r.headers["x-ratelimit-remaining"]))
        assert 0 < int(r.headers["x-ratelimit-reset"]) <= 60
    assert seen == [2, 1, 0]
    r = await partner.get("/partner/users")  # every route shares the key's bucket
    body = assert_error(r, 429, "rate_limited")
    assert 1 <= int(r.headers["retry-after"]) <= 20
    assert body["retry_after"] >= 1
    assert r.headers["x-ratelimit-remaining"] == "0"
    r = await partner.get("/partner/devices/wa_0000000000000000/status")
    assert r.status_code == 429  # before any lookup

    # another partner (another key) has its own bucket; the operator raises this one's
    other = await gw.register("Other", "other@example.com")
    assert (await other.get("/partner/me")).status_code == 200
    pid = (await services(gw).store.list_partners())[0].id
    r = await gw.client.post(f"/admin/partners/{pid}/limits", headers=operator(gw),
                             json={"api_rate_per_minute": 100})
    assert r.status_code == 200, r.text
    assert r.json()["partner"]["limits"]["effective_api_rate_per_minute"] == 100
    r = await partner.get("/partner/me")
    assert r.status_code == 200
    assert r.headers["x-ratelimit-limit"] == "100"

    device = await partner.linked_device()
    for expect in ("1", "0"):
        r = await gw.client.get(device["send_url"], params={"to": TO, "message": "hi"})
        assert r.status_code == 200, r.text
        assert r.headers["x-ratelimit-limit"] == "2"
        assert r.headers["x-ratelimit-remaining"] == expect
    r = await gw.client.post(device["send_url"], json={"to": TO, "message": "3rd"})
    assert_error(r, 429, "rate_limited")
    assert "retry-after" in r.headers
    assert "send URL" in r.json()["message"]
    r = await gw.client.post(f"/admin/partners/{pid}/limits", headers=operator(gw),
                             json={"send_rate_per_minute": 0})
    assert r.json()["partner"]["limits"]["send_rate_per_minute"] == 0
    r = await gw.client.post(device["send_url"], json={"to": TO, "message": "unlimited"})
    assert r.status_code == 200, r.text
    assert "x-ratelimit-limit" not in r.headers


async def test_failed_lookups_block_the_address(start: Starter) -> None:
    gw = await start(WAGATE_SECURITY_FAILED_AUTH_PER_MINUTE="3",
                     WAGATE_SECURITY_FAILED_AUTH_BLOCK_SECONDS="60")
    partner = await gw.register()
    device = await partner.create_device()
    bad = "pk_" + "1" * 39
    for _ in range(3):
        assert_error(await gw.client.get("/partner/me", headers={"x-api-key": bad}), 401,
                     "invalid_api_key")
    r = await gw.client.get("/wa/dt_nope/send", params={"to": TO, "message": "x"})
    assert_error(r, 404, "device_not_found")  # the 4th failure: the bucket is empty
    r = await partner.get("/partner/me")  # even a valid key from this address, for a while
    body = assert_error(r, 429, "rate_limited")
    assert "failed credential lookups" in body["message"]
    assert 50 <= int(r.headers["retry-after"]) <= 60
    assert (await gw.client.get(device["send_url"], params={"to": TO, "message": "x"})
            ).status_code == 429
    assert (await gw.client.get("/healthz")).status_code == 200  # no credential: not blocked


async def test_public_routes_are_limited_per_address(start: Starter) -> None:
    gw = await start(WAGATE_SECURITY_REGISTER_PER_HOUR="2",
                     WAGATE_SECURITY_LINK_PAGE_PER_MINUTE="2")
    partner = await gw.register("One", "one@example.com")
    await gw.register("Two", "two@example.com")
    r = await gw.client.post("/partner/register", json={"name": "3", "email": "3@example.com"})
    assert_error(r, 429, "rate_limited")
    assert r.headers["x-ratelimit-limit"] == "2"
    assert "retry-after" in r.headers
    device = await partner.create_device()
    r = await partner.post(f"/partner/devices/{device['session_id']}/link", json={})
    page = r.json()["link_url"].split("127.0.0.1")[1].split(":", 1)[1].split("/", 1)[1]
    for _ in range(2):
        assert (await gw.client.get(f"/{page}/state")).status_code == 200
    assert_error(await gw.client.get(f"/{page}/state"), 429, "rate_limited")


# -- registration policy, operator, suspension --------------------------------------------------


async def test_closed_registration_and_operator_created_partners(start: Starter) -> None:
    gw = await start(WAGATE_REGISTRATION="closed")
    r = await gw.client.post("/partner/register", json={"name": "A", "email": "a@example.com"})
    assert_error(r, 403, "registration_closed")
    r = await gw.client.post("/admin/partners", json={"name": "A", "email": "a@example.com"})
    assert_error(r, 401, "invalid_operator_token")
    r = await gw.client.post("/admin/partners", headers=operator(gw),
                             json={"name": "A", "email": "a@example.com"})
    assert r.status_code == 201, r.text
    assert r.json()["partner"]["status"] == "active"
    partner = Partner(r.json()["api_key"], gw.client)
    assert (await partner.get("/partner/me")).json()["status"] == "active"


async def test_approval_registration_keeps_the_key_pending_until_approved(
        start: Starter) -> None:
    gw = await start(WAGATE_REGISTRATION="approval")
    r = await gw.client.post("/partner/register", json={"name": "A", "email": "a@example.com"})
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "pending"
    partner = Partner(r.json()["api_key"], gw.client)
    for path in ("/partner/me", "/partner/users", "/partner/keys"):
        assert_error(await partner.get(path), 403, "partner_pending")
    listed = (await gw.client.get("/admin/partners", headers=operator(gw),
                                  params={"status": "pending"})).json()["partners"]
    assert [p["name"] for p in listed] == ["A"]
    pid = listed[0]["partner_id"]
    r = await gw.client.post(f"/admin/partners/{pid}/resume", headers=operator(gw))
    assert_error(r, 409, "invalid_partner_status")
    r = await gw.client.post(f"/admin/partners/{pid}/approve", headers=operator(gw))
    assert r.status_code == 200
    assert r.json()["partner"]["status"] == "active"
    assert (await partner.get("/partner/me")).status_code == 200
    r = await gw.client.post("/admin/partners/999/approve", headers=operator(gw))
    assert_error(r, 404, "partner_not_found")


async def test_suspension_refuses_everything_and_holds_the_queue(gateway: Gateway,
                                                                 partner: Partner) -> None:
    device = await partner.linked_device()
    svc = services(gateway)
    [p] = await svc.store.list_partners()
    r = await gateway.client.post(f"/admin/partners/{p.id}/suspend", headers=operator(gateway),
                                  json={"reason": "unpaid invoice"})
    assert r.status_code == 200, r.text
    assert r.json()["partner"]["status"] == "suspended"
    body = assert_error(await partner.get("/partner/me"), 403, "partner_suspended")
    assert "unpaid invoice" in body["message"]
    assert_error(await partner.get(f"/partner/devices/{device['session_id']}/status"), 403,
                 "partner_suspended")
    r = await gateway.client.post(device["send_url"], json={"to": TO, "message": "no"})
    assert_error(r, 403, "partner_suspended")

    # a message already in the queue (here: put there directly) is not dispatched
    dev = await svc.store.device_by_session(p.id, device["session_id"])
    assert dev is not None
    mid = new_message_id()
    await svc.store.enqueue_message(mid, p.id, dev.id, TO, "text", "held", time.time() + 600)
    svc.manager.wake(dev.id)
    await asyncio.sleep(0.5)
    message = await svc.store.message_by_id(p.id, mid)
    assert message is not None
    assert message.status == "queued"

    r = await gateway.client.post(f"/admin/partners/{p.id}/resume", headers=operator(gateway))
    assert r.status_code == 200, r.text

    async def sent() -> bool:
        m = await svc.store.message_by_id(p.id, mid)
        return m is not None and m.status in ("sent", "delivered", "read")

    await wait_for(sent)
    r = await gateway.client.post(device["send_url"], json={"to": TO, "message": "yes"})
    assert r.status_code == 200, r.text


async def test_suspended_partners_stay_held_across_a_restart(gateway: Gateway,
                                                             partner: Partner) -> None:
    await partner.linked_device()
    svc = services(gateway)
    [p] = await svc.store.list_partners()
    await gateway.client.post(f"/admin/partners/{p.id}/suspend", headers=operator(gateway))
    await gateway.restart()
    svc = services(gateway)
    assert p.id in svc.manager.held
    assert all(sup.dispatcher.held for sup in svc.manager)


# -- audit log -------------------------------------------------------------------------------


async def test_audit_log_records_who_did_what_from_where(start: Starter) -> None:
    gw = await start(WAGATE_WEBHOOKS_ALLOW_PRIVATE_TARGETS="1", WAGATE_WEBHOOKS_ALLOW_HTTP="1")
    partner = await gw.register("Alpha", "alpha@example.com")
    other = await gw.register("Beta", "beta@example.com")
    ops = await make_key(partner, "ops")
    device = await ops.create_device()
    sid = device["session_id"]
    assert (await ops.post(f"/partner/devices/{sid}/rotate-token")).status_code == 200
    r = await ops.post("/partner/webhooks", json={"url": "http://127.0.0.1:9/hook"})
    hook = r.json()["webhook"]["webhook_id"]
    assert (await ops.post(f"/partner/webhooks/{hook}/rotate-secret")).status_code == 200
    assert (await ops.delete(f"/partner/webhooks/{hook}")).status_code == 200
    assert (await ops.delete(f"/partner/devices/{sid}")).status_code == 200
    keys = (await partner.get("/partner/keys")).json()["keys"]
    assert (await partner.delete(f"/partner/keys/{keys[1]['key_id']}")).status_code == 200
    pid = (await partner.get("/partner/audit")).json()["entries"][0]["partner_id"]
    await gw.client.post(f"/admin/partners/{pid}/suspend", headers=operator(gw))
    await gw.client.post(f"/admin/partners/{pid}/resume", headers=operator(gw))

    r = await partner.get("/partner/audit", params={"limit": 200})
    assert r.status_code == 200, r.text
    entries = r.json()["entries"]
    actions = [e["action"] for e in reversed(entries)]
    assert actions == ["partner.registered", "key.created", "device.token_rotated",
                       "webhook.created", "webhook.secret_rotated", "webhook.deleted",
                       "device.deleted", "key.revoked", "partner.suspended", "partner.resumed"]
    by_action = {e["action"]: e for e in entries}
    assert by_action["device.deleted"]["key_name"] == "ops"
    assert by_action["device.deleted"]["target"] == sid
    assert by_action["device.deleted"]["ip"] == "127.0.0.1"
    assert by_action["key.created"]["key_name"] == "primary"
    assert by_action["key.created"]["detail"]["name"] == "ops"
    assert by_action["partner.registered"]["actor"] == "public"
    assert by_action["partner.suspended"]["actor"] == "operator"
    assert by_action["partner.suspended"]["ip"] is None  # the operator's address stays private
    assert by_action["webhook.created"]["detail"]["url"] == "http://127.0.0.1:9/hook"
    assert all("whsec_" not in str(e) and "dt_" not in str(e) for e in entries)

    page = (await partner.get("/partner/audit", params={"limit": 3})).json()
    assert len(page["entries"]) == 3
    assert page["next_cursor"]
    rest = (await partner.get("/partner/audit",
                              params={"limit": 200, "cursor": page["next_cursor"]})).json()
    assert len(rest["entries"]) == len(entries) - 3
    theirs = (await other.get("/partner/audit")).json()["entries"]
    assert [e["action"] for e in theirs] == ["partner.registered"]

    admin = (await gw.client.get("/admin/audit", headers=operator(gw),
                                 params={"limit": 200})).json()["entries"]
    assert len(admin) == len(entries) + 1
    assert next(e for e in admin if e["action"] == "partner.suspended")["ip"] == "127.0.0.1"
    only = (await gw.client.get("/admin/audit", headers=operator(gw),
                                params={"partner_id": str(pid)})).json()["entries"]
    assert {e["partner_id"] for e in only} == {pid}
    assert_error(await gw.client.get("/admin/audit"), 401, "invalid_operator_token")


# -- hardening -------------------------------------------------------------------------------


async def test_header_and_json_depth_limits(gateway: Gateway, partner: Partner) -> None:
    many = {f"x-h{i}": "1" for i in range(80)}
    assert_error(await gateway.client.get("/healthz", headers=many), 431, "headers_too_large")
    big = {"x-big": "a" * 17000}
    assert_error(await gateway.client.get("/healthz", headers=big), 431, "headers_too_large")
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    r = await partner.post("/partner/users", json={"label": "a", "extra": deep})
    body = assert_error(r, 400, "invalid_json")
    assert "deeper" in body["message"]
    shallow: Any = "x"
    for _ in range(20):
        shallow = [shallow]
    r = await partner.post("/partner/users", json={"label": "a", "extra": shallow})
    assert r.status_code == 201, r.text


async def test_cors_is_off_by_default_and_security_headers_on_html(gateway: Gateway) -> None:
    r = await gateway.client.options("/partner/me", headers={
        "origin": "https://evil.example", "access-control-request-method": "GET"})
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    r = await gateway.client.get("/healthz", headers={"origin": "https://evil.example"})
    assert not [h for h in r.headers if h.lower().startswith("access-control-")]
    assert r.headers["x-content-type-options"] == "nosniff"
    docs = await gateway.client.get("/docs")
    assert "frame-ancestors 'none'" in docs.headers["content-security-policy"]
    assert docs.headers["x-frame-options"] == "DENY"
    assert docs.headers["referrer-policy"] == "no-referrer"


async def test_cors_for_configured_origins_only(start: Starter) -> None:
    limited = await start(WAGATE_SERVER_CORS_ORIGINS="https://app.example.com")
    ok = await limited.client.options("/partner/me", headers={
        "origin": "https://app.example.com", "access-control-request-method": "GET",
        "access-control-request-headers": "x-api-key"})
    assert ok.headers["access-control-allow-origin"] == "https://app.example.com"
    evil = await limited.client.get("/healthz", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in evil.headers


async def test_a_request_that_stalls_times_out(start: Starter) -> None:
    limited = await start(WAGATE_SERVER_REQUEST_TIMEOUT="0.3")
    partner = await limited.register()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b'{"label":'
        await asyncio.sleep(1)
        yield b'"late"}'

    r = await limited.client.post("/partner/users", content=slow_body(),
                                  headers={**partner.headers, "content-type": "application/json"})
    assert_error(r, 503, "request_timeout")  # answered at 0.3 s (httpx reads it after 1 s)
    assert (await partner.get("/partner/users")).json()["users"] == []
    # the send URL is exempt: its own wait (delivery.send_wait) bounds it
    device = await partner.linked_device()
    r = await limited.client.post(device["send_url"], json={"to": TO, "message": "hi"})
    assert r.status_code == 200, r.text


async def test_no_internal_detail_in_error_responses(gateway: Gateway) -> None:
    for method, path, kw in [
        ("POST", "/partner/register", {"content": b"{\"name\": \"a\", \"email\": "}),
        ("POST", "/partner/register", {"json": {"name": ["x"], "email": 5}}),
        ("GET", "/partner/devices/%00%27;--/status", {"headers": {"x-api-key": "pk_'"}}),
        ("GET", "/admin/partners/1'or'1", {"headers": {OPERATOR_HEADER: "x"}}),
    ]:
        r = await gateway.client.request(method, path, **kw)
        assert r.status_code < 500, r.text
        for word in ("Traceback", "sqlite", "SELECT", "File \"", "aiosqlite"):
            assert word not in r.text


def test_config_rejects_bad_security_settings(tmp_path: Path) -> None:
    from gateway.config import load_config
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError, match="REGISTRATION"):
        load_config(env={"WAGATE_REGISTRATION": "maybe"})
    with pytest.raises(ConfigError, match="cors_origins"):
        load_config(env={"WAGATE_SERVER_CORS_ORIGINS": "app.example.com"})


def test_token_buckets_refill_evenly_and_follow_limit_changes() -> None:
    from gateway.security.ratelimit import Buckets, FailureGuard

    b = Buckets(max_buckets=3)
    infos = [b.take("k", 60, 60.0, 100.0) for _ in range(61)]
    assert [i.remaining for i in infos[:3]] == [59, 58, 57]
    assert infos[59].allowed
    assert not infos[60].allowed
    assert infos[60].retry_after == 1  # one token a second
    assert infos[60].reset == 60
    assert b.take("k", 60, 60.0, 102.0).remaining == 1  # two seconds: two tokens, one taken
    raised = b.take("k", 120, 60.0, 102.0)  # the operator doubled the limit: +60 at once
    assert raised.remaining == 60
    assert raised.limit == 120
    for key in ("a", "b"):
        b.take(key, 10, 60.0, 102.0)
    b.take("c", 10, 60.0, 1000.0)  # full: the refilled buckets are dropped to make room
    assert len(b) <= 3

    guard = FailureGuard()
    for i in range(3):
        guard.failed("1.2.3.4", 10.0 + i, per_minute=3, block_seconds=30)
    assert guard.blocked_for("1.2.3.4", 13.0) == 0
    guard.failed("1.2.3.4", 13.0, per_minute=3, block_seconds=30)
    assert guard.blocked_for("1.2.3.4", 14.0) == 29
    assert guard.blocked_for("5.6.7.8", 14.0) == 0
    assert guard.blocked_for("1.2.3.4", 43.5) == 0


async def test_a_narrow_key_cannot_revoke_a_wider_one(gateway: Gateway, partner: Partner) -> None:
    r = await partner.post("/partner/keys", json={"name": "keys only", "scopes": ["keys:manage"]})
    assert r.status_code == 201, r.text
    narrow = r.json()["api_key"]
    keys = (await partner.get("/partner/keys")).json()["keys"]
    primary = next(k for k in keys if k["name"] != "keys only")
    r = await gateway.client.delete(f"/partner/keys/{primary['key_id']}",
                                    headers={"x-api-key": narrow})
    assert r.status_code == 403
    assert r.json()["code"] == "insufficient_permissions"
    assert (await partner.get("/partner/me")).status_code == 200
