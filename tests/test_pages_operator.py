"""The operator console: sign-in with the operator token, its own kind of session (a partner's
never opens it, and it never opens the partner console), CSRF on approve / suspend / resume, the
status changes themselves (the same logic as /admin: the API answers 403 partner_suspended, the
audit log records it), devices across partners, health and queue depths; `wagate init` and
`wagate operator-token` print the token."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from gateway import __version__
from gateway.cli import main
from gateway.datadir import init_data_dir
from gateway.operator import OPERATOR_HEADER, operator_token
from gateway.tokens import new_token, token_hash
from tests.conftest import Gateway, Partner, make_config, start_gateway, wait_for
from tests.test_pages_console import LOCAL, Console, csrf_of
from tests.test_pages_link import assert_page_headers
from tests.test_security import operator, services

TO = "919876543210"
PAGES = ("/console/operator/partners", "/console/operator/devices", "/console/operator/health",
         "/console/operator/audit")


class Operator(Console):
    async def sign_in(self, key: str) -> httpx.Response:
        page = await self.client.get("/console/operator/login")
        assert page.status_code == 200
        return await self.client.post("/console/operator/login",
                                      data={"csrf": csrf_of(page), "operator_token": key})

    async def change(self, partner_id: int | str, change: str, **data: str) -> httpx.Response:
        return await self.post_form("/console/operator/partners",
                                    f"/console/operator/partners/{partner_id}/{change}", data)


def token(gw: Gateway) -> str:
    return operator_token(services(gw).vault)


async def partner_id(gw: Gateway, partner: Partner) -> int:
    found = await services(gw).store.api_key_by_hash(token_hash(partner.key))
    assert found is not None
    return found[1].id


@pytest.fixture
async def op(gateway: Gateway) -> AsyncIterator[Operator]:
    o = Operator(gateway)
    yield o
    await o.aclose()


async def signed_in(gateway: Gateway) -> Operator:
    o = Operator(gateway)
    r = await o.sign_in(token(gateway))
    assert r.status_code == 303, r.text
    return o


def row(page: httpx.Response, attr: str, value: str) -> str:
    found = re.search(rf'<tr {attr}="{re.escape(value)}">(.*?)</tr>', page.text, re.S)
    assert found, f"no row {attr}={value}"
    return found.group(1)


async def test_sign_in_with_the_operator_token(gateway: Gateway, op: Operator,
                                               partner: Partner) -> None:
    for path in PAGES:
        r = await op.get(path)
        assert r.status_code == 303
        assert r.headers["location"] == "/console/operator/login"
    page = await op.get("/console/operator/login")
    assert_page_headers(page)
    assert 'name="operator_token"' in page.text
    for wrong in (new_token("op"), "", "not a token", partner.key):
        r = await op.sign_in(wrong)
        assert r.status_code == 401, wrong
        assert "not the operator token" in r.text
        assert "wagate_operator=" not in r.headers.get("set-cookie", "")
    # a forged sign-in form (no double-submit cookie): refused even with the right token
    fresh = httpx.AsyncClient(base_url=gateway.url)
    try:
        r = await fresh.post("/console/operator/login",
                             data={"csrf": "x" * 43, "operator_token": token(gateway)})
        assert r.status_code == 403
        assert "wagate_operator=" not in r.headers.get("set-cookie", "")
    finally:
        await fresh.aclose()

    r = await op.sign_in(token(gateway))
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/console/operator/partners"
    cookie = next(h for h in r.headers.get_list("set-cookie")
                  if h.startswith("wagate_operator="))
    assert token(gateway) not in cookie
    assert token_hash(token(gateway)) not in cookie
    attrs = cookie.lower()
    assert "httponly" in attrs
    assert "samesite=lax" in attrs
    assert "path=/console/operator" in attrs
    for path in PAGES:
        r = await op.get(path)
        assert r.status_code == 200, path
        assert_page_headers(r)
        assert token(gateway) not in r.text
        assert partner.key not in r.text
    assert (await op.get("/console/operator")).headers["location"] == PAGES[0]
    assert (await op.get("/console/operator/login")).status_code == 303  # already signed in

    r = await op.post_form(PAGES[0], "/console/operator/logout", {})
    assert r.status_code == 303
    assert r.headers["location"] == "/console/operator/login"
    assert (await op.get(PAGES[0])).status_code == 303


async def test_partner_and_operator_sessions_do_not_cross(
        gateway: Gateway, op: Operator, partner: Partner) -> None:
    # the operator token is not a partner key, and a partner key is not the operator token
    r = await op.sign_in(partner.key)
    assert r.status_code == 401
    console = Console(gateway)
    try:
        r = await console.sign_in(token(gateway))
        assert r.status_code == 401
        assert (await console.sign_in(partner.key)).status_code == 303
        partner_sid = console.client.cookies["wagate_console"]
        # the partner's cookie (path /console) goes along to operator pages: not a session there
        for path in PAGES:
            r = await console.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"] == "/console/operator/login"
        r = await console.client.post("/console/operator/partners/1/suspend",
                                      data={"csrf": csrf_of(await console.get("/console/users"))})
        assert r.status_code == 303
        assert r.headers["location"] == "/console/operator/login"
    finally:
        await console.aclose()

    assert (await op.sign_in(token(gateway))).status_code == 303
    operator_sid = op.client.cookies["wagate_operator"]
    # the operator's cookie is not sent to partner pages; handed over, it is not a session there
    assert (await op.get("/console/devices")).headers["location"] == "/console/login"
    for name, sid, path in (("wagate_console", operator_sid, "/console/devices"),
                            ("wagate_operator", partner_sid, PAGES[0])):
        stray = httpx.AsyncClient(base_url=gateway.url, cookies={name: sid})
        try:
            r = await stray.get(path)
            assert r.status_code == 303, (name, path)
            assert r.headers["location"].endswith("/login")
        finally:
            await stray.aclose()
    assert (await partner.get("/partner/users")).status_code == 200  # nothing was suspended


async def test_status_changes_need_the_sessions_csrf_token(
        gateway: Gateway, op: Operator, partner: Partner) -> None:
    await op.sign_in(token(gateway))
    pid = await partner_id(gateway, partner)
    other = await signed_in(gateway)  # another operator session's token is not this one's
    try:
        stale = csrf_of(await other.get(PAGES[0]))
    finally:
        await other.aclose()
    for change in ("suspend", "resume", "approve"):
        for data in ({}, {"csrf": ""}, {"csrf": "forged"}, {"csrf": stale}):
            r = await op.client.post(f"/console/operator/partners/{pid}/{change}", data=data)
            assert r.status_code == 403, (change, data)
            assert_page_headers(r)
            assert "Form expired" in r.text
            assert 'action="/console/operator/logout"' in r.text  # the operator's layout
    assert (await partner.get("/partner/users")).status_code == 200
    audit = (await gateway.client.get("/admin/audit", headers=operator(gateway))).json()
    assert [e for e in audit["entries"] if e["action"].startswith("partner.s")] == []


async def test_suspend_and_resume_a_partner_through_the_page(
        gateway: Gateway, op: Operator) -> None:
    partner = await gateway.register("ABC Reseller", "abc@reseller.com")
    other = await gateway.register("XYZ Telecom", "ops@xyz.example")
    pid = await partner_id(gateway, partner)
    await op.sign_in(token(gateway))
    page = await op.get(PAGES[0])
    assert "ABC Reseller" in page.text
    assert "abc@reseller.com" in page.text
    assert 'data-status="active"' in row(page, "data-partner-id", str(pid))

    r = await op.change(pid, "suspend", reason="unpaid invoice")
    assert r.status_code == 303
    page = await op.get(PAGES[0])
    assert f"Partner {pid} (ABC Reseller) suspended." in page.text
    cells = row(page, "data-partner-id", str(pid))
    assert 'data-status="suspended"' in cells
    assert "unpaid invoice" in cells
    assert "/resume" in cells
    r = await partner.get("/partner/users")
    assert r.status_code == 403
    assert r.json()["code"] == "partner_suspended"
    assert "unpaid invoice" in r.json()["message"]
    assert (await other.get("/partner/users")).status_code == 200

    # the same change again does not apply: said on the page, nothing recorded
    await op.change(pid, "suspend")
    assert "the partner is suspended" in (await op.get(PAGES[0])).text

    audit = await op.get("/console/operator/audit")
    cells = row(audit, "data-action", "partner.suspended")
    assert "ABC Reseller" in cells
    assert "operator" in cells
    assert "reason=unpaid invoice" in cells
    entries = (await gateway.client.get("/admin/audit", headers=operator(gateway))).json()
    suspended = [e for e in entries["entries"] if e["action"] == "partner.suspended"]
    assert len(suspended) == 1
    assert suspended[0]["actor"] == "operator"
    assert suspended[0]["detail"] == {"previous": "active", "reason": "unpaid invoice"}

    r = await op.change(pid, "resume")
    assert r.status_code == 303
    assert f"Partner {pid} (ABC Reseller) resumed." in (await op.get(PAGES[0])).text
    assert (await partner.get("/partner/users")).status_code == 200
    audit = await op.get("/console/operator/audit")
    assert audit.text.index("partner.resumed") < audit.text.index("partner.suspended")

    # a pending partner is approved; an unknown one is a 404 page
    store = services(gateway).store
    key = new_token("pk")
    pending = await store.create_partner("New Co", "new@co.example", "", token_hash(key),
                                         "pending")
    r = await gateway.client.get("/partner/users", headers={"x-api-key": key})
    assert r.json()["code"] == "partner_pending"
    assert "/approve" in row(await op.get(PAGES[0]), "data-partner-id", str(pending.id))
    await op.change(pending.id, "approve")
    assert (await gateway.client.get("/partner/users", headers={"x-api-key": key})
            ).status_code == 200
    for raw in ("999999", "x1"):
        r = await op.change(raw, "suspend")
        assert r.status_code == 404
        assert_page_headers(r)


async def test_devices_across_partners_health_and_queues(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path / "data", env=LOCAL)
    op = await signed_in(gw)
    try:
        a = await gw.register("ABC Reseller", "abc@reseller.com")
        b = await gw.register("XYZ Telecom", "ops@xyz.example")
        linked = await a.linked_device("Maria's phone")
        pairing = await b.create_device(name="Front desk")
        # a's device is banned for a minute: three messages wait for it in the queue
        sid = linked["session_id"]
        r = await a.post(f"/sim/devices/{sid}/ban", json={"seconds": 60})
        assert r.status_code == 200, r.text
        await a.wait_status(sid, "banned")
        for i in range(3):
            r = await gw.client.post(linked["send_url"] + "?async=1",
                                     json={"to": TO, "message": f"q{i}"})
            assert r.status_code == 202, r.text
        # and b's webhook cannot be reached: its deliveries stay pending
        r = await b.post("/partner/webhooks", json={"url": "http://127.0.0.1:9/hook"})
        assert r.status_code == 201, r.text
        r = await b.post(f"/partner/webhooks/{r.json()['webhook']['webhook_id']}/test")
        assert r.status_code < 300, r.text

        page = await op.get("/console/operator/devices")
        mine = row(page, "data-session-id", sid)
        assert "ABC Reseller" in mine
        assert "Maria&#39;s phone" in mine
        assert 'data-status="banned"' in mine
        assert "temporarily banned" in mine  # the last error
        assert f"+{TO}" in mine
        theirs = row(page, "data-session-id", pairing["session_id"])
        assert "XYZ Telecom" in theirs
        assert "Front desk" in theirs
        assert 'data-field="status"' in theirs
        assert linked["send_url"] not in page.text  # no device credentials here

        await wait_for(services(gw).store.webhook_backlog)
        page = await op.get("/console/operator/health")
        assert '<dd data-field="driver">simulated</dd>' in page.text
        assert f'<dd data-field="version">{__version__}</dd>' in page.text
        assert ">restored<" in page.text
        assert '<dd data-field="queued">3</dd>' in page.text
        assert '<dd data-field="queue_depth">3</dd>' in page.text
        backlog = re.search(r'<dd data-field="webhook_backlog">(\d+)</dd>', page.text)
        assert backlog
        assert int(backlog.group(1)) >= 1  # b's device keeps making QR events
        assert '<td data-field="count">1</td>' in row(page, "data-state", "banned")
        metrics = (await gw.client.get("/metrics")).text  # the same numbers
        assert "wagate_queue_depth 3.0" in metrics
        assert 'wagate_devices{state="banned"} 1.0' in metrics
    finally:
        await op.aclose()
        await gw.stop()


def test_init_and_operator_token_print_the_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in [n for n in os.environ if n.startswith("WAGATE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WAGATE_DATA_DIR", str(tmp_path / "data"))
    main(["init"])
    out = capsys.readouterr().out
    expected = operator_token(init_data_dir(make_config(tmp_path / "data")))
    assert f"operator token: {expected}\n" in out
    assert "/console/operator" in out
    assert OPERATOR_HEADER in out
    assert "wagate operator-token" in out
    main(["operator-token"])
    assert capsys.readouterr().out == f"{expected}\n"
