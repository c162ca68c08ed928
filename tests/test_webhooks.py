"""Webhooks: signed (Standard Webhooks), retried through an outage, SSRF-guarded, logged."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks import Webhook

from gateway.operator import OPERATOR_HEADER, operator_token
from tests.conftest import Gateway, Partner, start_gateway, wait_for
from tests.receiver import Receiver
from tests.test_security import services

LOCAL = {
    "WAGATE_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
    "WAGATE_WEBHOOKS_ALLOW_HTTP": "true",
    "WAGATE_WEBHOOKS_RETRY_SCHEDULE": "0.1,0.2,0.3,0.3,0.3,0.3,0.3,0.3,0.3,0.3",
}
TO = "919876543210"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture
async def local_gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await start_gateway(tmp_path / "data", env=LOCAL)
    yield gw
    await gw.stop()


async def _hook(partner: Partner, url: str, **extra: Any) -> dict[str, Any]:
    r = await partner.post("/partner/webhooks", json={"url": url, **extra})
    assert r.status_code == 201, r.text
    data: dict[str, Any] = r.json()
    assert data["secret"].startswith("whsec_")
    return data


def _verify(secret: str, receiver: Receiver) -> None:
    wh = Webhook(secret)
    for item in receiver.received:
        wh.verify(item.body, {k: v for k, v in item.headers.items() if k.startswith("webhook-")})


async def test_events_arrive_signed_in_standard_webhooks_format(
        local_gateway: Gateway, receiver: Receiver) -> None:
    partner = await local_gateway.register()
    hook = await _hook(partner, receiver.url)
    device = await partner.linked_device()
    r = await local_gateway.client.post(device["send_url"], json={"to": TO, "message": "hi"})
    mid = r.json()["message_id"]
    await partner.post(f"/sim/devices/{device['session_id']}/inbound",
                       json={"from": "14155552671", "message": "hello back"})

    wanted = {"device.qr", "device.connected", "message.queued", "message.sent",
              "message.delivered", "message.read", "message.received"}
    await wait_for(lambda: _async(wanted <= set(receiver.types())))
    _verify(hook["secret"], receiver)
    sent = receiver.events("message.sent")[0]
    assert sent["data"]["message_id"] == mid
    assert sent["data"]["session_id"] == device["session_id"]
    inbound = receiver.events("message.received")[0]
    assert inbound["data"]["message"] == "hello back"
    assert inbound["data"]["from"] == "14155552671"
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert len(ids) == len(set(ids))
    # a tampered body does not verify
    with pytest.raises(Exception):  # noqa: B017, PT011 - the library's own error type
        Webhook(hook["secret"]).verify(receiver.received[0].body + b" ",
                                       {k: v for k, v in receiver.received[0].headers.items()
                                        if k.startswith("webhook-")})


async def _async(value: Any) -> Any:
    return value


async def test_receiver_down_then_up_gets_every_event(
        local_gateway: Gateway, receiver: Receiver) -> None:
    partner = await local_gateway.register()
    hook = await _hook(partner, receiver.url, events=["message.*"])
    device = await partner.linked_device()
    receiver.mode = "down"
    ids = []
    for i in range(5):
        r = await local_gateway.client.post(device["send_url"], json={"to": TO,
                                                                       "message": f"m{i}"})
        ids.append(r.json()["message_id"])
    webhook_id = hook["webhook"]["webhook_id"]

    async def failing_logged() -> bool:
        r = await partner.get(f"/partner/webhooks/{webhook_id}/deliveries")
        return any(a["status_code"] == 503 for d in r.json()["deliveries"]
                   for a in d["attempts"])

    await wait_for(failing_logged)
    receiver.mode = "up"

    async def all_read() -> bool:
        read = {e["data"]["message_id"] for e in receiver.events("message.read")}
        return read == set(ids)

    await wait_for(all_read, timeout=10)
    _verify(hook["secret"], receiver)

    async def settled() -> list[dict[str, Any]] | None:
        r = await partner.get(f"/partner/webhooks/{webhook_id}/deliveries",
                              params={"limit": 200})
        deliveries: list[dict[str, Any]] = r.json()["deliveries"]
        return deliveries if all(d["status"] == "delivered" for d in deliveries) else None

    deliveries = await wait_for(settled, timeout=10)
    assert len(deliveries) == 5 * 4  # queued, sent, delivered, read for each message
    retried = [d for d in deliveries if len(d["attempts"]) > 1]
    assert retried, "some delivery should show its failed attempts before the success"
    first = retried[0]["attempts"]
    assert first[0]["status_code"] == 503
    assert first[0]["response"] == "down for maintenance"
    assert first[-1]["status_code"] == 200


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hook", "https://127.0.0.1/hook", "https://10.0.0.1/hook",
    "https://169.254.169.254/latest/meta-data", "https://localhost/hook",
    "https://[::1]/hook", "https://100.64.0.1/hook", "ftp://example.com/hook",
    "https://user:pw@example.com/hook",
    # IPv6 forms that carry an internal IPv4 address, and site-local
    "https://[64:ff9b::a00:1]/hook", "https://[2002:a9fe:a9fe::1]/hook",
    "https://[::ffff:127.0.0.1]/hook", "https://[::127.0.0.1]/hook", "https://[fec0::1]/hook",
])
async def test_private_targets_are_refused_unless_allowed(gateway: Gateway, partner: Partner,
                                                          url: str) -> None:
    r = await partner.post("/partner/webhooks", json={"url": url})
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "webhook_url_refused"


async def test_secret_rotation_signs_with_both_during_the_overlap(
        local_gateway: Gateway, receiver: Receiver) -> None:
    partner = await local_gateway.register()
    hook = await _hook(partner, receiver.url)
    webhook_id = hook["webhook"]["webhook_id"]
    r = await partner.post(f"/partner/webhooks/{webhook_id}/rotate-secret")
    new_secret = r.json()["secret"]
    assert new_secret != hook["secret"]
    r = await partner.post(f"/partner/webhooks/{webhook_id}/test")
    assert r.status_code == 202
    event_id = r.json()["event_id"]
    await wait_for(lambda: _async(receiver.events("webhook.test")))
    assert receiver.received[-1].headers["webhook-id"] == event_id
    assert len(receiver.received[-1].headers["webhook-signature"].split(" ")) == 2
    _verify(new_secret, receiver)
    _verify(hook["secret"], receiver)


async def test_gone_disables_and_tells_the_other_endpoints(
        local_gateway: Gateway, receiver: Receiver) -> None:
    gone = Receiver(mode="gone")
    await gone.start()
    try:
        partner = await local_gateway.register()
        bad = await _hook(partner, gone.url)
        await _hook(partner, receiver.url, events=["webhook.*"])
        bad_id = bad["webhook"]["webhook_id"]
        await partner.post(f"/partner/webhooks/{bad_id}/test")
        await wait_for(lambda: _async(receiver.events("webhook.disabled")))
        event = receiver.events("webhook.disabled")[0]
        assert event["data"]["webhook_id"] == bad_id
        r = await partner.get(f"/partner/webhooks/{bad_id}")
        assert r.json()["webhook"]["status"] == "disabled"
        r = await partner.post(f"/partner/webhooks/{bad_id}/enable")
        assert r.status_code == 200
        r = await partner.get(f"/partner/webhooks/{bad_id}")
        assert r.json()["webhook"]["status"] == "active"
    finally:
        await gone.stop()


async def test_an_endpoint_never_gets_more_than_per_endpoint_requests_at_once(
        tmp_path: Path, receiver: Receiver) -> None:
    """A slot is freed when the HTTP attempt ends, before its outcome commits: the cap still
    holds, and no delivery is claimed twice meanwhile."""
    gw = await start_gateway(tmp_path / "d", env={**LOCAL, "WAGATE_WEBHOOKS_PER_ENDPOINT": "2"})
    try:
        receiver.delay = 0.05
        partner = await gw.register()
        hook = await _hook(partner, receiver.url, events=["webhook.*"])
        webhook_id = hook["webhook"]["webhook_id"]
        for _ in range(12):
            await partner.post(f"/partner/webhooks/{webhook_id}/test")
        await wait_for(lambda: _async(len(receiver.received) >= 12))
        assert receiver.peak == 2
        ids = [r.headers["webhook-id"] for r in receiver.received]
        assert len(ids) == len(set(ids)) == 12

        async def settled() -> bool:
            r = await partner.get(f"/partner/webhooks/{webhook_id}/deliveries")
            return {d["status"] for d in r.json()["deliveries"]} == {"delivered"}

        await wait_for(settled)
        r = await partner.get(f"/partner/webhooks/{webhook_id}/deliveries")
        assert [len(d["attempts"]) for d in r.json()["deliveries"]] == [1] * 12
    finally:
        await gw.stop()


async def test_endpoint_failing_for_too_long_is_disabled(tmp_path: Path,
                                                         receiver: Receiver) -> None:
    gw = await start_gateway(tmp_path / "d", env={**LOCAL, "WAGATE_WEBHOOKS_DISABLE_AFTER": "1"})
    try:
        partner = await gw.register()
        receiver.mode = "down"
        hook = await _hook(partner, receiver.url)
        webhook_id = hook["webhook"]["webhook_id"]
        for _ in range(3):
            await partner.post(f"/partner/webhooks/{webhook_id}/test")

        async def disabled() -> bool:
            r = await partner.get(f"/partner/webhooks/{webhook_id}")
            return bool(r.json()["webhook"]["status"] == "disabled")

        await wait_for(disabled, timeout=8)
        r = await partner.get(f"/partner/webhooks/{webhook_id}")
        assert "failed for" in r.json()["webhook"]["disabled_reason"]
    finally:
        await gw.stop()


async def test_redeliver_list_delete_and_validation(
        local_gateway: Gateway, receiver: Receiver) -> None:
    partner = await local_gateway.register()
    hook = await _hook(partner, receiver.url)
    webhook_id = hook["webhook"]["webhook_id"]
    await partner.post(f"/partner/webhooks/{webhook_id}/test")
    await wait_for(lambda: _async(receiver.events("webhook.test")))
    r = await partner.get(f"/partner/webhooks/{webhook_id}/deliveries")
    delivery = r.json()["deliveries"][0]
    r = await partner.post(
        f"/partner/webhooks/{webhook_id}/deliveries/{delivery['delivery_id']}/redeliver")
    assert r.status_code == 202
    await wait_for(lambda: _async(len(receiver.events("webhook.test")) == 2))
    first, second = receiver.received[-2:]
    assert first.headers["webhook-id"] == second.headers["webhook-id"]  # same event, same id
    r = await partner.get("/partner/webhooks")
    assert [w["webhook_id"] for w in r.json()["webhooks"]] == [webhook_id]
    assert "whsec_" not in json.dumps(r.json())  # the secret is shown once, at creation
    for bad in ({"url": receiver.url, "events": ["message.lost"]}, {"url": receiver.url,
                "events": "message.sent"}, {"events": ["*"]}):
        r = await partner.post("/partner/webhooks", json=bad)
        assert r.status_code == 400, bad
    r = await partner.post("/partner/webhooks", json={"url": receiver.url,
                                                      "session_id": "wa_nope"})
    assert r.status_code == 404
    other = await local_gateway.register(name="B", email="b@x.io")
    for method, path in (("GET", f"/partner/webhooks/{webhook_id}"),
                         ("POST", f"/partner/webhooks/{webhook_id}/test"),
                         ("GET", f"/partner/webhooks/{webhook_id}/deliveries"),
                         ("DELETE", f"/partner/webhooks/{webhook_id}")):
        r = await local_gateway.client.request(method, path, headers=other.headers)
        assert r.status_code == 404, (method, path)
    r = await partner.delete(f"/partner/webhooks/{webhook_id}")
    assert r.status_code == 200
    r = await partner.get(f"/partner/webhooks/{webhook_id}")
    assert r.status_code == 404


async def test_a_suspended_partners_deliveries_wait_until_it_is_resumed(
        local_gateway: Gateway, receiver: Receiver) -> None:
    partner = await local_gateway.register()
    await _hook(partner, receiver.url, events=["webhook.test", "device.connected"])
    svc = services(local_gateway)
    admin = {OPERATOR_HEADER: operator_token(svc.vault)}
    pid = (await partner.get("/partner/audit")).json()["entries"][0]["partner_id"]
    r = await local_gateway.client.post(f"/admin/partners/{pid}/suspend", headers=admin)
    assert r.status_code == 200, r.text
    await svc.store.fanout(pid, None, "device.connected", {"held": True})
    # Not claimable while suspended: not attempted, so not failing towards disabling either.
    assert await svc.store.claim_deliveries(time.time() + 1, 10, 60, per_endpoint=16,
                                            busy={}) == []
    [held] = await svc.store.list_deliveries(
        (await svc.store.list_webhooks(pid))[0].id, 10)
    assert held.status == "held"
    r = await local_gateway.client.post(f"/admin/partners/{pid}/resume", headers=admin)
    assert r.status_code == 200, r.text
    await wait_for(lambda: _async(receiver.types() == ["device.connected"]))
    assert json.loads(receiver.received[0].body)["data"] == {"held": True}
