"""The neonize driver offline: real worker processes, real neonize, no route to WhatsApp.

Nothing can pair here, so these tests check what offline operation promises: connects fail fast
with the dial error, each device gets its own store and `forget` removes it, a killed worker
costs its sessions a `ConnectFailed` and is replaced, and shutdown leaves no process or thread.
Events that only a WhatsApp server could produce are fed to a live client through neonize's own
callback entry point (`Event.execute`, the `inject` test hook) as serialized protobufs.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from PIL import Image

from gateway.config import NeonizeConfig
from gateway.errors import DriverError, DriverNotReady, NotConnected, PairingError, SendFailed
from sessions.drivers.base import DeviceRef, Location, MediaFile, OutgoingMessage
from sessions.drivers.neonize import NeonizeDriver, NeonizeSession
from sessions.events import (
    Connected,
    ConnectFailed,
    DriverEvent,
    InboundMessage,
    LoggedOut,
    PairSuccess,
    QRCode,
    QRTimeout,
    Receipt,
)

FAST = NeonizeConfig(worker_idle_seconds=0.3, start_hold_seconds=0.5, connect_timeout=20)


class Events:
    """A session's event sink that tests can wait on."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[DriverEvent] = asyncio.Queue()

    def __call__(self, event: DriverEvent) -> None:
        self.queue.put_nowait(event)

    async def next(self, kind: type[Any] = object, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            event = await asyncio.wait_for(self.queue.get(), max(0.01, deadline - time.monotonic()))
            if isinstance(event, kind):
                return event


async def eventually(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
async def driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[NeonizeDriver]:
    monkeypatch.setenv("WAGATE_NEONIZE_TEST_HOOKS", "1")
    drv = NeonizeDriver(FAST, tmp_path)
    await drv.start()
    try:
        yield drv
    finally:
        pids = drv.worker_pids()
        await drv.stop()
        assert not drv.workers
        assert not any(alive(pid) for pid in pids)


async def open_failed(driver: NeonizeDriver, key: str, jid: str | None = None
                      ) -> tuple[NeonizeSession, Events]:
    events = Events()
    session = driver.open_session(DeviceRef(key, jid), events)
    await session.connect()
    return session, events


async def test_offline_connect_fails_fast_with_the_dial_error(driver: NeonizeDriver,
                                                              tmp_path: Path) -> None:
    started = time.monotonic()
    session, events = await open_failed(driver, "wa_dev1")
    failed = await events.next(ConnectFailed)
    first = time.monotonic() - started  # includes starting the worker process
    assert failed.reason.startswith("failed to dial WhatsApp: ")
    assert "web.whatsapp.com" in failed.reason or "dial tcp" in failed.reason
    assert first < 15

    store = tmp_path / "neonize" / "wa_dev1.db"
    assert store.is_file()
    assert store.stat().st_size > 0

    with pytest.raises(PairingError):  # no QR code was ever shown
        await session.pair_phone("919876543210")
    with pytest.raises(NotConnected):
        await session.send(OutgoingMessage("text", "919876543210", "hi"), None)
    await session.close()
    await session.close()  # idempotent

    started = time.monotonic()  # a retry on the warm worker: milliseconds, unless the resolver
    retry, events = await open_failed(driver, "wa_dev1")  # times out once (5 s, seen here)
    await events.next(ConnectFailed)
    assert time.monotonic() - started < 7
    await retry.close()

    await driver.forget("wa_dev1")
    assert list((tmp_path / "neonize").iterdir()) == []
    await eventually(lambda: not driver.workers)  # idle workers exit


async def test_unknown_jid_is_reported_logged_out_without_an_abort(driver: NeonizeDriver) -> None:
    session, events = await open_failed(driver, "wa_gone", "919876543210:7@s.whatsapp.net")
    pids = driver.worker_pids()
    out = await events.next()
    assert isinstance(out, LoggedOut)
    assert "link it again" in out.reason
    assert driver.worker_pids() == pids  # neonize was never asked to resume it
    await session.close()
    await driver.forget("wa_gone")


async def test_many_devices_share_workers_and_leave_nothing_behind(tmp_path: Path) -> None:
    threads_before = threading.active_count()
    drv = NeonizeDriver(NeonizeConfig(devices_per_worker=4, worker_idle_seconds=0.3,
                                      start_hold_seconds=0.5), tmp_path)
    await drv.start()
    try:
        opened = await asyncio.gather(*(open_failed(drv, f"wa_m{i}") for i in range(10)))
        for _, events in opened:
            await events.next(ConnectFailed)
        assert len(drv.worker_pids()) == 3  # 4 + 4 + 2
        assert len(list((tmp_path / "neonize").glob("*.db"))) == 10
        for i, (session, _) in enumerate(opened):
            await session.close()
            await drv.forget(f"wa_m{i}")
        assert list((tmp_path / "neonize").iterdir()) == []
        await eventually(lambda: not drv.workers)
    finally:
        await drv.stop()
    await eventually(lambda: threading.active_count() <= threads_before, timeout=5)


def load_neonize() -> SimpleNamespace:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    logging.getLogger("neonize.utils.log").setLevel(logging.WARNING)
    from neonize.proto import Neonize_pb2 as pb
    from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e

    root.setLevel(level)
    root.handlers[:] = handlers
    return SimpleNamespace(pb=pb, e2e=e2e)


async def inject(session: NeonizeSession, event: Any) -> None:
    assert session.worker is not None
    await session.worker.call("inject", limit=10, sid=session.sid, type=type(event).__name__,
                              data=base64.b64encode(event.SerializePartialToString()).decode())


async def test_neonize_events_reach_the_sink_through_the_real_handlers(
        driver: NeonizeDriver, tmp_path: Path) -> None:
    neo = load_neonize()
    pb, e2e = neo.pb, neo.e2e
    session, events = await open_failed(driver, "wa_inj")
    await events.next(ConnectFailed)

    me = pb.JID(User="919876543210", Server="s.whatsapp.net", Device=4, RawAgent=0,
                Integrator=0, IsEmpty=False)
    await inject(session, pb.PairStatus(ID=me, Status=pb.PairStatus.SUCCESS))
    assert await events.next() == PairSuccess("919876543210", "919876543210:4@s.whatsapp.net")

    await inject(session, pb.Connected(status=True))
    assert await events.next() == Connected()

    peer = pb.JID(User="447700900123", Server="s.whatsapp.net", Device=0, RawAgent=0,
                  Integrator=0, IsEmpty=False)
    source = pb.MessageSource(Chat=peer, Sender=peer, IsFromMe=False, IsGroup=False)
    await inject(session, pb.Receipt(MessageSource=source, MessageIDs=["3EB0FF"],
                                     Type=pb.Receipt.READ, Timestamp=1))
    assert await events.next() == Receipt(("3EB0FF",), "read", "447700900123")

    await inject(session, pb.Message(
        Info=pb.MessageInfo(MessageSource=source, ID="IN1", Timestamp=1_700_000_000_000),
        Message=e2e.Message(conversation="hello")))
    inbound = await events.next()
    assert isinstance(inbound, InboundMessage)
    assert (inbound.wa_id, inbound.sender, inbound.text) == ("IN1", "447700900123", "hello")

    # The worker now believes the client is connected, so a send reaches whatsmeow, which
    # refuses it (this store never paired): the error comes back as a driver error, no abort.
    pids = driver.worker_pids()
    with pytest.raises(NotConnected, match="doesn't contain a device JID"):
        await session.send(OutgoingMessage("text", "447700900123", "hi"), None)
    # Every other kind takes the same road to whatsmeow (media via neonize's upload first).
    image = tmp_path / "blob"
    Image.new("RGB", (4, 4)).save(image, "PNG")
    size = image.stat().st_size
    others = [
        OutgoingMessage("text", "447700900123", "see https://example.com", link_preview=True),
        OutgoingMessage("location", "447700900123", "", location=Location(12.97, 77.59, "HQ")),
        OutgoingMessage("image", "447700900123", "caption",
                        media=MediaFile(str(image), "image/png", size)),
        OutgoingMessage("document", "447700900123", "",
                        media=MediaFile(str(image), "application/pdf", size, "a.pdf")),
    ]
    for message in others:  # a preview that cannot be fetched costs the preview, not the send
        with pytest.raises(NotConnected, match=r"device JID|websocket not connected"):
            await session.send(message, None)
    with pytest.raises(SendFailed, match="media file"):  # the blob changed under the message
        await session.send(OutgoingMessage("image", "447700900123", "", media=MediaFile(
            str(image), "image/png", size + 1)), None)
    with pytest.raises(DriverError):
        await session.on_whatsapp(["447700900123"])
    with pytest.raises(DriverError):
        await session.typing("447700900123", True)
    assert driver.worker_pids() == pids
    await session.close()
    await driver.forget("wa_inj")


async def test_a_killed_worker_fails_its_sessions_and_is_replaced(driver: NeonizeDriver) -> None:
    session, events = await open_failed(driver, "wa_k1")
    await events.next(ConnectFailed)
    [pid] = driver.worker_pids()

    os.kill(pid, signal.SIGKILL)
    failed = await events.next(ConnectFailed)
    assert failed.reason == "driver worker exited (killed by SIGKILL)"
    with pytest.raises(NotConnected):
        await session.send(OutgoingMessage("text", "919876543210", "hi"), None)
    await session.close()

    # A replacement is warmed at once, and the supervisor's next connect lands on it.
    await eventually(lambda: bool(driver.worker_pids()) and driver.worker_pids() != [pid])
    retry, events = await open_failed(driver, "wa_k1")
    assert (await events.next(ConnectFailed)).reason.startswith("failed to dial WhatsApp")
    assert driver.worker_pids() != [pid]
    await retry.close()
    await driver.forget("wa_k1")


async def test_worker_crashes_are_rate_limited(tmp_path: Path) -> None:
    drv = NeonizeDriver(NeonizeConfig(worker_restart_limit=1, worker_idle_seconds=0.3), tmp_path)
    await drv.start()
    try:
        session, events = await open_failed(drv, "wa_r1")
        await events.next(ConnectFailed)
        [pid] = drv.worker_pids()
        os.kill(pid, signal.SIGKILL)
        assert "exited" in (await events.next(ConnectFailed)).reason
        await session.close()
        assert drv.worker_pids() == []  # no warm replacement past the limit
        again = drv.open_session(DeviceRef("wa_r1", None), Events())
        with pytest.raises(DriverNotReady, match="crashed 1 times"):
            await again.connect()
        await again.close()
    finally:
        await drv.stop()


async def test_stop_ends_clients_and_workers_quickly(tmp_path: Path) -> None:
    drv = NeonizeDriver(FAST, tmp_path)
    await drv.start()
    sessions = await asyncio.gather(*(open_failed(drv, f"wa_s{i}") for i in range(3)))
    for _, events in sessions:
        await events.next(ConnectFailed)
    pids = drv.worker_pids()
    assert pids
    started = time.monotonic()
    await drv.stop()
    assert time.monotonic() - started < 3
    assert not any(alive(pid) for pid in pids)
    late = drv.open_session(DeviceRef("wa_late", None), Events())
    with pytest.raises(DriverNotReady):
        await late.connect()


async def inject_raw(session: NeonizeSession, kind: str, data: bytes) -> None:
    assert session.worker is not None
    await session.worker.call("inject", limit=10, sid=session.sid, type=kind,
                              data=base64.b64encode(data).decode())


async def test_qr_codes_pairing_code_and_qr_timeout(driver: NeonizeDriver) -> None:
    session, events = await open_failed(driver, "wa_qr")
    await events.next(ConnectFailed)
    pids = driver.worker_pids()

    await inject_raw(session, "qr", b"2@first,key1,key2,key3")
    assert await events.next() == QRCode("2@first,key1,key2,key3", 60.0)
    await inject_raw(session, "qr", b"2@second,key1,key2,key3")
    assert await events.next() == QRCode("2@second,key1,key2,key3", 20.0)

    # QR codes are showing, so a pairing code is asked of whatsmeow, which cannot reach
    # WhatsApp here: a PairingError, and the worker survives the call.
    with pytest.raises(PairingError, match="websocket not connected"):
        await session.pair_phone("919876543210")
    assert driver.worker_pids() == pids

    await inject_raw(session, "login_status", b"timeout")
    assert await events.next() == QRTimeout()
    await session.close()
    await driver.forget("wa_qr")


async def test_a_go_fault_kills_only_the_worker(driver: NeonizeDriver, tmp_path: Path) -> None:
    session, events = await open_failed(driver, "wa_abort")
    await events.next(ConnectFailed)
    assert session.worker is not None
    with pytest.raises(DriverNotReady, match="exited"):
        # neonize's get_me on a client Go does not know: a nil-pointer panic in Go.
        await session.worker.call("inject", limit=20, sid=session.sid, type="abort",
                                  store=str(tmp_path / "abort"), data="")
    failed = await events.next(ConnectFailed)
    assert failed.reason.startswith("driver worker exited (killed by SIGABRT: panic: runtime error")
    await session.close()
    retry, events = await open_failed(driver, "wa_abort")  # the driver carries on
    assert (await events.next(ConnectFailed)).reason.startswith("failed to dial WhatsApp")
    await retry.close()
    await driver.forget("wa_abort")


def add_stored_device(store: Path, jid: str) -> None:
    """A linked device row as whatsmeow stores it (random keys: it only has to be resumable)."""
    import sqlite3

    with sqlite3.connect(store) as db:
        db.execute(
            "INSERT INTO whatsmeow_device (jid, registration_id, noise_key, identity_key,"
            " signed_pre_key, signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details,"
            " adv_account_sig, adv_account_sig_key, adv_device_sig)"
            " VALUES (?, 1, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?)",
            (jid, os.urandom(32), os.urandom(32), os.urandom(32), os.urandom(64), os.urandom(32),
             b"\x00", os.urandom(64), os.urandom(32), os.urandom(64)))


async def test_a_linked_device_resumes_from_its_store(driver: NeonizeDriver,
                                                      tmp_path: Path) -> None:
    first, events = await open_failed(driver, "wa_linked")  # creates the store's schema
    await events.next(ConnectFailed)
    await first.close()
    jid = "919876543210:5@s.whatsapp.net"
    add_stored_device(tmp_path / "neonize" / "wa_linked.db", jid)

    # Resumed with jid= (no QR): it gets as far as dialling WhatsApp, like any linked device.
    resumed, events = await open_failed(driver, "wa_linked", jid)
    failed = await events.next()
    assert isinstance(failed, ConnectFailed)
    assert failed.reason.startswith("failed to dial WhatsApp")
    assert driver._recent_crashes() == 0  # a JID Go did not know would have aborted the worker
    await resumed.close()
    await driver.forget("wa_linked")
    assert not (tmp_path / "neonize" / "wa_linked.db").exists()
