"""The send path's shortcuts keep their promises: the send-URL cache forgets deleted and rotated
tokens at once, batched enqueues fail one by one, batches are claimed and settled in FIFO order
with every transition recorded, and the simulated WhatsApp records concurrent sends in order."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.config import SimulatedConfig
from gateway.errors import StoreError
from gateway.store.base import SendOutcome
from gateway.store.sqlite import SQLiteStore
from sessions.drivers.base import DeviceRef, OutgoingMessage
from sessions.drivers.simulated import SimulatedSession, SimulatedWhatsApp
from tests.conftest import Gateway, Partner, start_gateway

TO = "919812345678"


def assert_error(r: object, status: int, code: str) -> None:
    assert r.status_code == status, r.text  # type: ignore[attr-defined]
    assert r.json()["code"] == code  # type: ignore[attr-defined]


async def test_a_cached_send_url_dies_at_once_on_delete(gateway: Gateway,
                                                        partner: Partner) -> None:
    device = await partner.linked_device()
    for _ in range(2):  # the second send is answered from the token cache
        r = await gateway.client.post(device["send_url"], json={"to": TO, "message": "x"})
        assert r.status_code in (200, 202), r.text
    r = await partner.delete(f"/partner/devices/{device['session_id']}")
    assert r.status_code == 200, r.text
    r = await gateway.client.post(device["send_url"], json={"to": TO, "message": "x"})
    assert_error(r, 404, "device_not_found")


async def test_a_cached_send_url_dies_at_once_on_rotation_without_grace(tmp_path: Path) -> None:
    gw = await start_gateway(tmp_path / "data",
                             env={"WAGATE_SESSIONS_TOKEN_GRACE_SECONDS": "0"})
    try:
        partner = await gw.register()
        device = await partner.linked_device()
        r = await gw.client.post(device["send_url"], json={"to": TO, "message": "x"})
        assert r.status_code in (200, 202), r.text
        r = await partner.post(f"/partner/devices/{device['session_id']}/rotate-token")
        assert r.status_code == 200, r.text
        r = await gw.client.post(device["send_url"], json={"to": TO, "message": "x"})
        assert_error(r, 404, "device_not_found")
    finally:
        await gw.stop()


async def _store(tmp_path: Path) -> tuple[SQLiteStore, int, int]:
    store = SQLiteStore(tmp_path / "w.db")
    await store.open()
    p = await store.create_partner("A", "a@x", "", "ha")
    u = await store.create_user(p.id, "u", "", "n", "uh")
    d = await store.create_device(p.id, u.id, "wa_a", "d", "n", "dh")
    return store, p.id, d.id


async def test_concurrent_enqueues_commit_together_and_fail_alone(tmp_path: Path) -> None:
    store, pid, did = await _store(tmp_path)
    try:
        await store.enqueue_message("dup", pid, did, TO, "text", "first", None)
        ids = [f"m{i}" for i in range(20)]
        results = await asyncio.gather(
            *(store.enqueue_message(mid, pid, did, TO, "text", mid, None) for mid in ids[:10]),
            store.enqueue_message("dup", pid, did, TO, "text", "again", None),  # PK clash
            *(store.enqueue_message(mid, pid, did, TO, "text", mid, None) for mid in ids[10:]),
            return_exceptions=True)
        assert [type(r) for r in results].count(StoreError) == 0
        failed = [r for r in results if isinstance(r, Exception)]
        assert len(failed) == 1  # only the clashing one
        for mid in ids:
            m = await store.message_by_id(pid, mid)
            assert m is not None
            assert m.status == "queued"
            assert m.body == mid
            assert [e.status for e in await store.message_events(mid)] == ["queued"]
        first = await store.message_by_id(pid, "dup")
        assert first is not None
        assert first.body == "first"
    finally:
        await store.close()


async def test_claims_are_fifo_with_due_retries_and_settle_records_each_transition(
        tmp_path: Path) -> None:
    store, pid, did = await _store(tmp_path)
    try:
        for i in range(6):
            await store.enqueue_message(f"m{i}", pid, did, TO, "text", str(i), None)
        first = await store.claim_queued(did, time.time(), 2)
        assert [m.id for m in first] == ["m0", "m1"]
        assert all(m.status == "sending" and m.attempts == 1 for m in first)
        await store.settle_sends([
            SendOutcome("m0", "sent", wa_id="WA0"),
            SendOutcome("m1", "retry", error="busy", retry_at=time.time() - 1),  # due now
        ])
        # m1 went back to the queue and is due: it comes first again, before m2
        again = await store.claim_queued(did, time.time(), 3)
        assert [m.id for m in again] == ["m1", "m2", "m3"]
        assert again[0].attempts == 2
        await store.settle_sends([SendOutcome("m1", "failed", error="refused"),
                                  SendOutcome("m2", "sent", wa_id="WA2"),
                                  SendOutcome("m3", "sent", wa_id="WA3")])
        later = await store.claim_queued(did, time.time(), 10)
        assert [m.id for m in later] == ["m4", "m5"]

        m0 = await store.message_by_id(pid, "m0")
        assert m0 is not None
        assert (m0.status, m0.wa_id) == ("sent", "WA0")
        assert [e.status for e in await store.message_events("m0")] == [
            "queued", "sending", "sent"]
        assert [e.status for e in await store.message_events("m1")] == [
            "queued", "sending", "retry", "sending", "failed"]
        # settling again changes nothing and records nothing
        await store.settle_sends([SendOutcome("m0", "sent", wa_id="WA0")])
        assert len(await store.message_events("m0")) == 3
        # grouped receipts move every listed message once
        assert await store.apply_receipt(did, ["WA0", "WA2", "WA3", "nope"], "delivered") == 3
        assert await store.apply_receipt(did, ["WA0", "WA2"], "delivered") == 0
        assert [e.status for e in await store.message_events("m2")][-1] == "delivered"
        # a crash now: the claimed batch is in doubt and goes back to the queue
        assert await store.requeue_in_doubt() == 2
        back = await store.claim_queued(did, time.time(), 10)
        assert [m.id for m in back] == ["m4", "m5"]
        assert all(m.in_doubt for m in back)
    finally:
        await store.close()


async def test_deferred_messages_wait_for_their_time(tmp_path: Path) -> None:
    store, pid, did = await _store(tmp_path)
    try:
        for i, to in enumerate((TO, TO, "14155552671")):
            await store.enqueue_message(f"m{i}", pid, did, to, "text", str(i), None)
        claimed = await store.claim_queued(did, time.time(), 1)
        await store.settle_sends([SendOutcome(claimed[0].id, "retry", error="later",
                                              retry_at=time.time() + 60)])
        # m1 (same recipient) waits behind the deferred m0; m2 (another recipient) goes on.
        assert [m.id for m in await store.claim_queued(did, time.time(), 10)] == ["m2"]
        assert [m.id for m in await store.next_queued(did, time.time(), 10)] == []
        later = time.time() + 61
        assert [m.id for m in await store.claim_queued(did, later, 10)] == ["m0", "m1"]
    finally:
        await store.close()


@pytest.mark.parametrize("send_seconds", [0.0, 0.01])
async def test_simulated_whatsapp_records_concurrent_sends_in_call_order(
        tmp_path: Path, send_seconds: float) -> None:
    config = SimulatedConfig(send_seconds=send_seconds, delivered_seconds=-1)
    world = SimulatedWhatsApp(config, tmp_path / "sim.db")
    world.open()
    try:
        session = SimulatedSession(world, DeviceRef("wa_a", None), lambda event: None)
        session.state = "connected"
        ids = [f"id{i:03d}" for i in range(100)]
        got = await asyncio.gather(*(session.send(OutgoingMessage("text", TO, mid), mid)
                                     for mid in ids))
        assert got == ids
        assert [m["message_id"] for m in world.received("wa_a")] == ids
        await session.send(OutgoingMessage("text", TO, "again"), ids[0])  # a resend: one row
        rows = world.received("wa_a")
        assert len(rows) == 100
        assert rows[0]["attempts"] == 2
    finally:
        await world.drain()
        world.close()
