"""Durable delivery: outbox answers, lifecycle, idempotency, pacing-free FIFO, expiry, listing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Gateway, Partner, start_gateway, wait_for

TO = "919876543210"
OTHER = "14155552671"


async def take_offline(partner: Partner, sid: str) -> None:
    """A linked device whose reconnects keep failing: sends to it queue."""
    await partner.post(f"/sim/devices/{sid}/faults", json={"connect_failure_rate": 1})
    await partner.post(f"/partner/devices/{sid}/restart")
    await partner.wait_status(sid, "disconnected")


async def _message(partner: Partner, message_id: str) -> dict[str, Any]:
    r = await partner.get(f"/partner/messages/{message_id}")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


async def test_sent_then_receipts_build_a_timeline(gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    r = await gateway.client.post(device["send_url"], json={"to": TO, "message": "hello"})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "sent"
    mid = body["message_id"]

    async def read() -> bool:
        return (await _message(partner, mid))["status"] == "read"

    await wait_for(read)
    view = await _message(partner, mid)
    assert [e["status"] for e in view["events"]] == ["queued", "sending", "sent", "delivered",
                                                      "read"]
    assert view["session_id"] == device["session_id"]
    # the send-URL holder can read its own message's status too
    token_url = device["send_url"].rsplit("/send", 1)[0]
    r = await gateway.client.get(f"{token_url}/messages/{mid}")
    assert r.status_code == 200
    assert r.json()["status"] == "read"
    r = await gateway.client.get(f"{token_url}/messages/3EB0000000000000000000")
    assert r.status_code == 404


async def test_async_answers_202_at_once(gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    r = await gateway.client.post(device["send_url"] + "?async=1",
                                  json={"to": TO, "message": "later"})
    assert r.status_code == 202
    assert r.json()["message"] == "Message queued"
    mid = r.json()["message_id"]

    async def sent() -> bool:
        return (await _message(partner, mid))["status"] in ("sent", "delivered", "read")

    await wait_for(sent)


async def test_offline_device_queues_fifo_until_it_reconnects(
        gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    await take_offline(partner, sid)
    ids = []
    for i in range(10):
        r = await gateway.client.post(device["send_url"] + "?async=1",
                                      json={"to": TO, "message": f"q{i}"})
        assert r.status_code == 202, r.text
        ids.append(r.json()["message_id"])
    await partner.post(f"/sim/devices/{sid}/faults", json={})

    async def all_sent() -> list[dict[str, Any]] | None:
        sent = (await partner.get(f"/sim/devices/{sid}/sent")).json()["messages"]
        return sent if len(sent) == 10 else None

    sent = await wait_for(all_sent)
    assert [m["message_id"] for m in sent] == ids
    assert [m["message"] for m in sent] == [f"q{i}" for i in range(10)]


async def test_queued_messages_expire_after_the_ttl(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path / "d", env={"WAGATE_DELIVERY_QUEUE_TTL": "1"})
    try:
        partner = await gw.register()
        device = await partner.linked_device()
        sid = device["session_id"]
        await take_offline(partner, sid)
        r = await gw.client.post(device["send_url"] + "?async=1",
                                 json={"to": TO, "message": "stale"})
        assert r.status_code == 202
        mid = r.json()["message_id"]

        async def expired() -> bool:
            return (await _message(partner, mid))["status"] == "expired"

        await wait_for(expired, timeout=5)
    finally:
        await gw.stop()


async def test_logout_fails_the_queue_and_refuses_new_sends(
        gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    await take_offline(partner, sid)
    r = await gateway.client.post(device["send_url"] + "?async=1",
                                  json={"to": TO, "message": "doomed"})
    mid = r.json()["message_id"]
    r = await partner.post(f"/partner/devices/{sid}/logout")
    assert r.status_code == 200
    assert (await _message(partner, mid))["status"] == "failed"
    r = await gateway.client.post(device["send_url"], json={"to": TO, "message": "refused"})
    assert r.status_code == 409
    assert r.json()["code"] == "device_not_linked"


async def test_idempotency_key_replays_the_first_answer(
        gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    url = device["send_url"]
    h = {"Idempotency-Key": "order-42"}
    first = await gateway.client.post(url, json={"to": TO, "message": "once"}, headers=h)
    again = await gateway.client.post(url, json={"to": TO, "message": "once"}, headers=h)
    assert first.status_code == again.status_code == 200
    assert again.json()["message_id"] == first.json()["message_id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await gateway.client.post(url, json={"to": TO, "message": "twice"}, headers=h)
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_mismatch"
    # GET send URLs take the key as ref= (browsers and scripts re-issue GETs)
    q = {"to": TO, "message": "by get", "ref": "r1"}
    g1 = await gateway.client.get(url, params=q)
    g2 = await gateway.client.get(url, params=q)
    assert g1.json()["message_id"] == g2.json()["message_id"]
    sent = (await partner.get(f"/sim/devices/{device['session_id']}/sent")).json()["messages"]
    assert [m["message"] for m in sent] == ["once", "by get"]


async def test_concurrent_duplicate_key_gets_409(gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    await partner.post(f"/sim/devices/{sid}/faults", json={"send_delay": 1})
    h = {"Idempotency-Key": "k"}
    body = {"to": TO, "message": "slow"}
    first = asyncio.create_task(gateway.client.post(device["send_url"], json=body, headers=h))
    await asyncio.sleep(0.2)
    dup = await gateway.client.post(device["send_url"], json=body, headers=h)
    assert dup.status_code == 409
    assert dup.json()["code"] == "idempotency_in_progress"
    assert (await first).status_code == 200


async def test_refused_sends_are_retried_then_failed(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path / "d", env={"WAGATE_DELIVERY_MAX_ATTEMPTS": "3"})
    try:
        partner = await gw.register()
        device = await partner.linked_device()
        sid = device["session_id"]
        await partner.post(f"/sim/devices/{sid}/faults", json={"send_failure_rate": 1})
        r = await gw.client.post(device["send_url"], json={"to": TO, "message": "no",
                                                           "async": True})
        mid = r.json()["message_id"]

        async def failed() -> dict[str, Any] | None:
            m = await _message(partner, mid)
            return m if m["status"] == "failed" else None

        final = await wait_for(failed)
        assert final["attempts"] == 3
        assert "failure injection" in final["error"]
        assert [e["status"] for e in final["events"]].count("retry") == 2
        # the next message still goes out once WhatsApp accepts again
        await partner.post(f"/sim/devices/{sid}/faults", json={})
        r = await gw.client.post(device["send_url"], json={"to": TO, "message": "yes"})
        assert r.status_code == 200
    finally:
        await gw.stop()


async def test_listing_filters_and_cursor(gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    ids = []
    for i in range(5):
        to = TO if i % 2 == 0 else "14155552671"
        r = await gateway.client.post(device["send_url"], json={"to": to, "message": f"m{i}"})
        ids.append(r.json()["message_id"])
    r = await partner.get(f"/partner/devices/{sid}/messages", params={"limit": 2})
    page1 = r.json()
    assert [m["message_id"] for m in page1["messages"]] == ids[::-1][:2]
    r = await partner.get(f"/partner/devices/{sid}/messages",
                          params={"limit": 2, "cursor": page1["next_cursor"]})
    assert [m["message_id"] for m in r.json()["messages"]] == ids[::-1][2:4]
    r = await partner.get(f"/partner/devices/{sid}/messages", params={"to": "+1 415 555 2671"})
    assert {m["message"] for m in r.json()["messages"]} == {"m1", "m3"}
    r = await partner.get(f"/partner/devices/{sid}/messages",
                          params={"since": "2000-01-01T00:00:00Z", "status": "sent"})
    assert r.status_code == 200
    for bad in ({"status": "lost"}, {"limit": "0"}, {"since": "yesterday"}):
        r = await partner.get(f"/partner/devices/{sid}/messages", params=bad)
        assert r.status_code == 400, bad


async def test_inbound_messages_are_stored_and_listed(gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    r = await partner.post(f"/sim/devices/{sid}/inbound", json={"from": "14155552671",
                                                                 "message": "hi there"})
    assert r.status_code == 200

    async def listed() -> list[dict[str, Any]]:
        r = await partner.get(f"/partner/devices/{sid}/inbound")
        messages: list[dict[str, Any]] = r.json()["messages"]
        return messages

    inbound = await wait_for(listed)
    assert inbound[0]["from"] == "14155552671"
    assert inbound[0]["message"] == "hi there"


@pytest.mark.parametrize("paced", [False, True], ids=["batched", "one-at-a-time"])
async def test_a_retry_holds_later_messages_to_its_recipient_only(tmp_path: Path,
                                                                  paced: bool) -> None:
    env = {"WAGATE_DELIVERY_RETRY_INITIAL": "0.5"}
    if paced:
        env["WAGATE_DELIVERY_RATE_PER_MINUTE"] = "60000"
    gw = await start_gateway(tmp_path / "d", env=env)
    try:
        partner = await gw.register()
        device = await partner.linked_device()
        sid, url = device["session_id"], device["send_url"]
        await partner.post(f"/sim/devices/{sid}/faults", json={"send_failure_rate": 1})
        first = (await gw.client.post(url, json={"to": TO, "message": "first",
                                                 "async": True})).json()["message_id"]

        async def refused_once() -> bool:
            events = (await _message(partner, first))["events"]
            return any(e["status"] == "retry" for e in events)

        await wait_for(refused_once)
        await partner.post(f"/sim/devices/{sid}/faults", json={})
        ids = [first]
        for to, text in ((TO, "second"), (OTHER, "other")):
            r = await gw.client.post(url, json={"to": to, "message": text, "async": True})
            ids.append(r.json()["message_id"])

        async def all_sent() -> list[str] | None:
            sent = (await partner.get(f"/sim/devices/{sid}/sent")).json()["messages"]
            texts = [m["message"] for m in sent]
            return texts if len(texts) == 3 else None

        order = await wait_for(all_sent)
        # FIFO per recipient: "second" waited for "first"'s retry; the other recipient did not.
        assert order.index("first") < order.index("second")
        assert sorted(order) == ["first", "other", "second"]
    finally:
        await gw.stop()


async def test_a_graceful_stop_lets_the_send_under_way_finish(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path / "d")
    partner = await gw.register()
    device = await partner.linked_device()
    sid = device["session_id"]
    await partner.post(f"/sim/devices/{sid}/faults", json={"send_delay": 0.5})
    r = await gw.client.post(device["send_url"], json={"to": TO, "message": "mid-stop",
                                                       "async": True})
    mid = r.json()["message_id"]

    async def sending() -> bool:
        return (await _message(partner, mid))["status"] == "sending"

    await wait_for(sending)
    await gw.stop()  # while WhatsApp (simulated) is still taking the message
    gw = await start_gateway(tmp_path / "d")
    try:
        partner = Partner(partner.key, gw.client)
        message = await _message(partner, mid)
        assert message["status"] in ("sent", "delivered", "read")
        assert not message["in_doubt"]
        assert "in doubt" not in str(message["events"])
    finally:
        await gw.stop()
