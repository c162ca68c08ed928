"""The access matrix, driven by the OpenAPI document, so a new route is covered (or flagged) the
moment it is documented:

- partner B calls every partner route with partner A's ids and tokens → 404, exactly like an
  id that does not exist;
- a key without the operation's `x-required-scope` → 403 `insufficient_permissions` naming it,
  and a key with only that scope is not refused for want of a scope;
- a suspended partner → 403 `partner_suspended`, a pending one → 403 `partner_pending`, on
  every partner route and (suspended) on its send URL;
- operator routes refuse callers without the operator token (a partner key is not one);
- a send URL cannot read another device's messages.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.operator import OPERATOR_HEADER
from gateway.security.scopes import SCOPES
from tests.conftest import Gateway, Partner, start_gateway, wait_for
from tests.test_api_partners import assert_error
from tests.test_security import make_key, operator, services

TO = "919876543210"
MISSING = {
    "session_id": "wa_0000000000000000", "user_token": "pu_" + "0" * 39,
    "webhook_id": "we_0000000000000000", "delivery_id": "999999999",
    "message_id": "3EB0000000000000000000", "key_id": "key_0000000000000000",
}
# The 404 code each id answers with when it is another partner's (or does not exist).
NOT_FOUND = {"session_id": "device_not_found", "user_token": "user_not_found",
             "webhook_id": "webhook_not_found", "delivery_id": "webhook_not_found",
             "message_id": "message_not_found", "key_id": "key_not_found"}
BODIES: dict[tuple[str, str], Any] = {
    ("post", "/partner/devices/{session_id}/pair"): {"phone": TO},
    ("post", "/sim/devices/{session_id}/scan"): {"phone": TO},
    ("post", "/sim/devices/{session_id}/inbound"): {"from": TO, "message": "hi"},
    ("post", "/sim/devices/{session_id}/ban"): {"seconds": 60},
    ("post", "/partner/devices"): {"device_name": "sneaky"},
}


def operations(spec: dict[str, Any], scheme: str) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "delete", "put", "patch") and any(
                    scheme in s for s in operation.get("security", [])):
                out.append((method, path, operation))
    return out


def fill(path: str, ids: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        assert name in ids, f"{path}: the access matrix needs an id for {{{name}}}"
        return ids[name]

    return re.sub(r"\{(\w+)\}", one, path)


def params(path: str) -> list[str]:
    return re.findall(r"\{(\w+)\}", path)


async def call(client: httpx.AsyncClient, method: str, path: str, template: str,
               headers: dict[str, str]) -> httpx.Response:
    body = BODIES.get((method, template), {} if method == "post" else None)
    if body is None:
        return await client.request(method.upper(), path, headers=headers)
    return await client.request(method.upper(), path, json=body, headers=headers)


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[Gateway]:
    gateway = await start_gateway(tmp_path / "data", env={
        "WAGATE_SIMULATED_QR_FIRST_SECONDS": "60", "WAGATE_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "1",
        "WAGATE_WEBHOOKS_ALLOW_HTTP": "1"})
    try:
        yield gateway
    finally:
        await gateway.stop()


async def owned_ids(partner: Partner) -> dict[str, str]:
    """A partner with one of everything: a linked device with a message, a user, a webhook with
    a delivery, a second API key."""
    device = await partner.linked_device()
    sent = await partner.client.post(device["send_url"], json={"to": TO, "message": "hello"})
    assert sent.status_code == 200, sent.text
    r = await partner.post("/partner/webhooks", json={"url": "http://127.0.0.1:9/hook"})
    assert r.status_code == 201, r.text
    hook = r.json()["webhook"]["webhook_id"]

    async def delivery() -> str | None:
        rows = (await partner.get(f"/partner/webhooks/{hook}/deliveries")).json()["deliveries"]
        return str(rows[0]["delivery_id"]) if rows else None

    delivery_id = await wait_for(delivery)
    await make_key(partner, "spare", ["users:read"])
    keys = (await partner.get("/partner/keys")).json()["keys"]
    return {"session_id": device["session_id"], "user_token": device["user_token"],
            "webhook_id": hook, "delivery_id": delivery_id,
            "message_id": sent.json()["message_id"], "key_id": keys[1]["key_id"],
            "send_url": device["send_url"]}


async def test_access_matrix(gw: Gateway, subtests: pytest.Subtests) -> None:
    spec = (await gw.client.get("/openapi.json")).json()
    partner_ops = operations(spec, "apiKey")
    assert len(partner_ops) > 35
    a = await gw.register("Alpha", "alpha@example.com")
    b = await gw.register("Beta", "beta@example.com")
    a_ids = await owned_ids(a)
    b_ids = await owned_ids(b)

    # 1. B with A's ids: 404, the same answer as for ids that do not exist
    probed = 0
    for method, path, _ in partner_ops:
        names = params(path)
        if not names and path != "/partner/devices":
            continue  # B's own listings and creations: nothing of A's to name
        probed += 1
        with subtests.test("foreign ids are 404", method=method, path=path):
            foreign_headers = dict(b.headers)
            missing_headers = dict(b.headers)
            if path == "/partner/devices":
                foreign_headers["x-user-token"] = a_ids["user_token"]
                missing_headers["x-user-token"] = MISSING["user_token"]
                code = "user_not_found"
            else:
                code = NOT_FOUND[names[0]]
            r = await call(gw.client, method, fill(path, a_ids), path, foreign_headers)
            foreign = assert_error(r, 404, code)
            r = await call(gw.client, method, fill(path, MISSING), path, missing_headers)
            assert assert_error(r, 404, code) == foreign
    assert probed > 25

    # 2. scopes: a key without the operation's scope is refused, naming it; a key with only
    #    that scope is not refused for want of a scope (missing ids: nothing changes)
    required = {op.get("x-required-scope") for _, _, op in partner_ops} - {None}
    assert required <= set(SCOPES)
    c = await gw.register("Gamma", "gamma@example.com")
    d = await gw.register("Delta", "delta@example.com")
    # A partner holds at most 10 keys: the "without" keys over B and D.
    holders = [b, d]
    without = {s: await make_key(holders[i % 2], f"no {s}", [x for x in SCOPES if x != s])
               for i, s in enumerate(sorted(required))}
    only = {s: await make_key(c, f"only {s}", [s]) for s in sorted(required)}
    for method, path, op in partner_ops:
        scope = op["x-required-scope"]
        if scope is None:
            continue
        with subtests.test("scopes", method=method, path=path, scope=scope):
            r = await call(gw.client, method, fill(path, MISSING), path,
                           {**without[scope].headers, "x-user-token": MISSING["user_token"]})
            body = assert_error(r, 403, "insufficient_permissions")
            assert body["scope"] == scope
            r = await call(gw.client, method, fill(path, MISSING), path,
                           {**only[scope].headers, "x-user-token": MISSING["user_token"]})
            assert r.status_code != 403, r.text

    # 3. suspended and pending partners: 403 on every partner route, suspended send URLs too
    d = await gw.register("Delta", "delta@example.com")
    d_device = await d.create_device()
    e = await gw.register("Epsilon", "epsilon@example.com")
    svc = services(gw)
    by_name = {p.name: p.id for p in await svc.store.list_partners()}
    r = await gw.client.post(f"/admin/partners/{by_name['Delta']}/suspend", headers=operator(gw))
    assert r.status_code == 200, r.text
    await svc.store.set_partner_status(by_name["Epsilon"], "pending", None)
    for method, path, _ in partner_ops:
        for who, code in ((d, "partner_suspended"), (e, "partner_pending")):
            with subtests.test("partner status", method=method, path=path, code=code):
                r = await call(gw.client, method, fill(path, MISSING), path,
                               {**who.headers, "x-user-token": MISSING["user_token"]})
                assert_error(r, 403, code)
    for method in ("GET", "POST"):
        r = await gw.client.request(method, d_device["send_url"],
                                    params={"to": TO, "message": "x"})
        assert_error(r, 403, "partner_suspended")

    # 4. operator routes: no token, or a partner key in its place → 401
    admin_ops = operations(spec, "operatorToken")
    assert len(admin_ops) >= 8
    admin_ids = {"session_id": a_ids["session_id"], "partner_id": str(by_name["Alpha"])}
    for method, path, _ in admin_ops:
        with subtests.test("operator only", method=method, path=path):
            for headers in ({}, a.headers, {OPERATOR_HEADER: a.key}):
                r = await call(gw.client, method, fill(path, admin_ids), path, headers)
                assert_error(r, 401, "invalid_operator_token")

    # 5. a send URL reads only its own device's messages
    b_token = b_ids["send_url"].split("/wa/")[1].split("/")[0]
    r = await gw.client.get(f"/wa/{b_token}/messages/{a_ids['message_id']}")
    assert_error(r, 404, "message_not_found")
    r = await gw.client.get(f"/wa/{b_token}/messages/{b_ids['message_id']}")
    assert r.status_code == 200, r.text

    # A's things are untouched by all of the above
    assert (await a.status(a_ids["session_id"]))["status"] == "connected"
    keys = [k["key_id"] for k in (await a.get("/partner/keys")).json()["keys"]]
    assert a_ids["key_id"] in keys
    hooks = (await a.get("/partner/webhooks")).json()["webhooks"]
    assert [h["webhook_id"] for h in hooks] == [a_ids["webhook_id"]]
