"""The session manager and supervisors, driven through the real app and simulated WhatsApp."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sessions.events import InboundMessage
from tests.conftest import Gateway, Partner, start_gateway, wait_for
from tests.test_security import services


async def test_linked_devices_reconnect_after_restart_without_a_scan(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path / "data")
    try:
        partner = await gw.register()
        linked = await partner.linked_device("linked")
        pairing = await partner.create_device(name="pairing")
        await gw.restart()
        partner.client = gw.client
        await partner.wait_status(linked["session_id"], "connected")
        r = await gw.client.post(linked["send_url"], json={"to": "919876543210",
                                                           "message": "after restart"})
        assert r.status_code == 200, r.text
        # a QR stream does not survive a restart; asking for the QR starts a new one
        status = await partner.status(pairing["session_id"])
        assert status["status"] == "unlinked"
        assert "restart" in status["last_error"]
        r = await partner.get(f"/partner/devices/{pairing['session_id']}/qr")
        assert r.json()["type"] == "pending"
        await partner.link(pairing["session_id"], phone="14155552671")
    finally:
        await gw.stop()


async def test_connect_failures_back_off_and_recover(tmp_path: Path) -> None:
    # a short send_wait: the sync send below waits that long for the device that stays down
    gateway = await start_gateway(tmp_path / "data", env={"WAGATE_DELIVERY_SEND_WAIT": "0.3"})
    try:
        await _connect_failures_back_off_and_recover(gateway, await gateway.register())
    finally:
        await gateway.stop()


async def _connect_failures_back_off_and_recover(gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    r = await partner.post(f"/sim/devices/{sid}/faults", json={"connect_failure_rate": 1})
    assert r.status_code == 200
    await partner.post(f"/sim/devices/{sid}/drop")
    await partner.post(f"/partner/devices/{sid}/restart")

    async def failing() -> dict[str, object] | None:
        s = await partner.status(sid)
        return s if s["status"] == "disconnected" and s["last_error"] else None

    status = await failing() or await wait_for(failing)
    assert "connect failure" in str(status["last_error"])
    # a linked device that is reconnecting queues the message (202), it does not refuse it
    r = await gateway.client.post(device["send_url"], json={"to": "919876543210",
                                                            "message": "while down"})
    assert r.status_code == 202, r.text  # after delivery.send_wait: the device stayed down
    assert r.json()["status"] == "queued"
    assert r.json()["message"] == "Message queued"
    await partner.post(f"/sim/devices/{sid}/faults", json={})
    await partner.wait_status(sid, "connected", timeout=5)  # the backoff retried on its own

    async def delivered() -> bool:
        sent = (await partner.get(f"/sim/devices/{sid}/sent")).json()["messages"]
        return any(m["message"] == "while down" for m in sent)

    await wait_for(delivered)


async def test_one_slow_or_failing_device_does_not_affect_another(
        gateway: Gateway, partner: Partner) -> None:
    slow = await partner.linked_device("slow")
    failing = await partner.linked_device("failing")
    healthy = await partner.linked_device("healthy")
    await partner.post(f"/sim/devices/{slow['session_id']}/faults", json={"send_delay": 3})
    await partner.post(f"/sim/devices/{failing['session_id']}/faults",
                       json={"connect_failure_rate": 1, "send_failure_rate": 1})
    await partner.post(f"/partner/devices/{failing['session_id']}/restart")

    slow_send = asyncio.create_task(gateway.client.post(
        slow["send_url"], json={"to": "919876543210", "message": "slow"}))
    await asyncio.sleep(0.05)
    for i in range(20):
        r = await gateway.client.post(healthy["send_url"],
                                      json={"to": "919876543210", "message": f"m{i}"})
        assert r.status_code == 200, r.text
    r = await gateway.client.get("/healthz")
    assert r.status_code == 200
    # ordering, not wall-clock: all healthy sends finished while the slow one was still in flight
    assert not slow_send.done(), "healthy device waited for the slow one"
    assert (await slow_send).status_code == 200
    assert (await partner.status(healthy["session_id"]))["status"] == "connected"


async def test_phone_logout_needs_a_new_qr(gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    await partner.post(f"/sim/devices/{sid}/unlink")
    await partner.wait_status(sid, "logged_out")
    status = await partner.status(sid)
    assert status["phone"] is None
    r = await gateway.client.post(device["send_url"], json={"to": "919876543210", "message": "x"})
    assert r.status_code == 409
    assert r.json()["code"] == "device_not_linked"
    r = await partner.get(f"/partner/devices/{sid}/qr")
    assert r.json()["type"] == "pending"
    await partner.link(sid, phone="14155552671")
    assert (await partner.status(sid))["phone"] == "14155552671"


async def test_ban_then_reconnect_when_it_expires(gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    r = await partner.post(f"/sim/devices/{sid}/ban", json={"seconds": 0.5})
    assert r.status_code == 200
    await partner.wait_status(sid, "banned", timeout=2)
    await partner.wait_status(sid, "connected", timeout=5)


async def test_dropped_connection_comes_back(gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    await partner.post(f"/sim/devices/{sid}/drop")
    status = await partner.status(sid)
    assert status["status"] in ("disconnected", "connected")
    await partner.wait_status(sid, "connected")


async def test_qr_stream_times_out_then_restarts_on_request(
        gateway: Gateway, partner: Partner) -> None:
    device = await partner.create_device()
    sid = device["session_id"]
    codes: set[str] = set()

    async def expired() -> bool:
        r = await partner.get(f"/sim/devices/{sid}")
        if r.json()["qr"]:
            codes.add(r.json()["qr"])
        return (await partner.status(sid))["status"] == "unlinked"

    await wait_for(expired, timeout=6, interval=0.05)
    assert len(codes) >= 3  # codes rotated: 0.6 s, then 0.3 s each in the test config
    assert "expired" in (await partner.status(sid))["last_error"]
    r = await partner.get(f"/partner/devices/{sid}/qr")
    assert r.json()["type"] == "pending"
    await partner.wait_status(sid, "pairing")


async def test_receipts_and_inbound_left_at_a_stop_are_still_stored(
        gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    sid = device["session_id"]
    svc = services(gateway)
    [sup] = [s for s in svc.manager if s.key == sid]
    await sup.stop()
    # What the driver reported while the session was closing, still in the actor's inbox:
    sup._inbox.put_nowait(InboundMessage("IN_LATE", "14155552671", "14155552671", "text",
                                         "arrived while closing"))
    await sup._drain_inbox()
    inbound = (await partner.get(f"/partner/devices/{sid}/inbound")).json()["messages"]
    assert [m["message"] for m in inbound] == ["arrived while closing"]
