"""Inside a worker process: the neonize clients of a shard of devices, on one asyncio loop.

Imported by `worker.py` only after logging is configured (importing neonize configures logging
itself and loads the Go library). The rules below come from docs/neonize.md; each is there
because breaking it aborts the process, freezes the loop or leaks a thread:

- One event loop for the life of the process (neonize dispatches every Go callback to the loop
  of the first `connect()`), and an executor sized for the shard: every connected client pins
  one executor thread for its whole life, and every other neonize call needs one too.
- Starting and stopping clients write Go maps that other calls read: `RWGate` makes lifecycle
  calls exclusive and everything else shared. A start holds the gate until it settles (first QR
  code, connected, or failed) plus a grace second, capped by `start_hold_seconds`.
- Never cancel a connect task (cancelling runs a blocking Go `Stop` on the loop thread); stop a
  client with `await client.stop()` and wait for the task.
- Resume with `jid=` only when that JID is in the store (an unknown JID is a nil-pointer panic);
  otherwise the link is gone and the device is reported `LoggedOut`.
- A client object must outlive its Go thread (ctypes callbacks live on it), so a client whose
  stop timed out is kept forever and the daemon is told to recycle this worker.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import neonize
from neonize.aioze.client import ClientFactory, NewAClient
from neonize.aioze.events import (
    ClientOutdatedEv,
    ConnectedEv,
    ConnectFailureEv,
    DisconnectedEv,
    KeepAliveRestoredEv,
    KeepAliveTimeoutEv,
    LoggedOutEv,
    MessageEv,
    PairStatusEv,
    ReceiptEv,
    StreamErrorEv,
    StreamReplacedEv,
    TemporaryBanEv,
)
from neonize.events import EVENT_TO_INT
from neonize.exc import (
    IsOnWhatsAppError,
    LogoutError,
    PairPhoneError,
    SendMessageError,
    SendPresenceError,
)
from neonize.proto import Neonize_pb2 as neonize_pb
from neonize.proto.Neonize_pb2 import JID
from neonize.utils.enum import ChatPresence, ChatPresenceMedia

from gateway.errors import DriverError, DriverNotReady, NotConnected, PairingError, SendFailed
from sessions.drivers.neonize import convert, outgoing, protocol
from sessions.drivers.neonize.gate import RWGate
from sessions.events import (
    ConnectFailed,
    DriverEvent,
    InboundMessage,
    LoggedOut,
    QRTimeout,
    Receipt,
)

log = logging.getLogger("wagate.neonize.worker")

SUBSCRIBED = (PairStatusEv, ConnectedEv, DisconnectedEv, LoggedOutEv, TemporaryBanEv,
              StreamReplacedEv, ConnectFailureEv, ClientOutdatedEv, ReceiptEv, MessageEv,
              KeepAliveTimeoutEv, KeepAliveRestoredEv, StreamErrorEv)
TERMINAL = (LoggedOutEv, TemporaryBanEv, StreamReplacedEv, ConnectFailureEv, ClientOutdatedEv)
SETTLE_GRACE = 1.0  # Go keeps touching its maps briefly after the first QR code / Connected
STOP_WAIT = 75.0  # a stop during a hanging dial takes ~60 s (whatsmeow waits for the socket lock)
EOF_BUDGET = 5.0  # the daemon is gone: stop what we can, then exit anyway


@dataclass(frozen=True)
class Settings:
    devices_per_worker: int = 25
    ffi_concurrency: int = 16
    start_hold_seconds: float = 1.0
    test_hooks: bool = False  # allow `inject` (tests feed neonize events to a live client)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        return cls(int(data.get("devices_per_worker", cls.devices_per_worker)),
                   int(data.get("ffi_concurrency", cls.ffi_concurrency)),
                   float(data.get("start_hold_seconds", cls.start_hold_seconds)),
                   bool(data.get("test_hooks", False)))

    @property
    def executor_threads(self) -> int:
        return self.devices_per_worker + self.ffi_concurrency + 8


def stored_jids(store: str) -> set[str]:
    """The device JIDs a store holds, read with Python's sqlite3.

    Not `get_all_devices_from_db`: every call of it opens a store container that is never
    closed (one more fd each time); this connection is closed at once.
    """
    path = Path(store)
    if not path.exists():
        return set()
    uri = path.resolve().as_uri() + "?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
        try:
            rows = db.execute("SELECT jid FROM whatsmeow_device").fetchall()
        except sqlite3.OperationalError:
            return set()
    return {str(row[0]) for row in rows}


def jid_from_string(value: str) -> Any:
    """The JID to resume `value` with: `User` keeps `phone:device`, as the store lists it."""
    user, _, server = value.rpartition("@")
    return JID(User=user, Server=server, Device=0, RawAgent=0, Integrator=0, IsEmpty=False)


def user_jid(phone: str) -> Any:
    return JID(User=phone, Server=convert.USER_SERVER, Device=0, RawAgent=0, Integrator=0,
               IsEmpty=False)


def upload_error(exc: Exception) -> DriverError:
    """A media message could not be built: the upload (or ffmpeg/ffprobe) failed."""
    if isinstance(exc, FileNotFoundError) and "ff" in str(exc.filename or ""):
        return SendFailed("audio and video need ffmpeg on the server (apt-get install ffmpeg)")
    failure = send_error(f"{type(exc).__name__}: {exc}")
    if isinstance(failure, NotConnected):
        return failure
    return SendFailed(f"media upload failed: {failure.reason}")


def send_error(message: str) -> DriverError:
    reason = convert.short_reason(message)
    lowered = reason.lower()
    if any(s in lowered for s in ("not connected", "client is nil", "doesn't contain a device")):
        return NotConnected(reason)
    return SendFailed(reason)


async def _first(aws: list[Awaitable[Any]], limit: float | None) -> None:
    tasks = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()


class Device:
    """One device's neonize client inside this worker; lives from `open` to `close`."""

    def __init__(self, host: Host, sid: int, key: str, store: str, jid: str | None) -> None:
        self.host = host
        self.sid = sid
        self.key = key
        self.store = store
        self.jid = jid
        # starting | connecting | pairing | connected | reconnecting | ended | stopped
        self.state = "starting"
        self.client: Any = None
        self.task: asyncio.Task[Any] | None = None
        self.qr_count = 0
        self.stopping = asyncio.Event()
        self.started = asyncio.Event()
        self.settled = asyncio.Event()
        self.done = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None

    def emit(self, event: DriverEvent) -> None:
        # After a stop was asked for, lifecycle events are stale; receipts and messages are facts.
        if self.stopping.is_set() and not isinstance(event, Receipt | InboundMessage):
            return
        self.host.emit(self.sid, event)

    # -- start ---------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            previous = self.host.latest.get(self.key)
            self.host.latest[self.key] = self
            if previous is not None and previous is not self and not previous.done.is_set():
                # Same key means the same Go uuid: the old client must be gone first.
                await _first([previous.done.wait(), self.stopping.wait()], STOP_WAIT)
                if not previous.done.is_set() and not self.stopping.is_set():
                    log.warning("device %s: previous client still stopping after %.0fs; "
                                "starting anyway (its Go thread is orphaned)", self.key,
                                STOP_WAIT)
            if self.stopping.is_set():
                return
            async with self.host.gate.exclusive():
                if self.stopping.is_set():
                    return
                await self._start()
        except DriverError as exc:
            self.state = "ended"
            self.emit(ConnectFailed(exc.reason))
        except Exception as exc:
            log.exception("device %s: start failed", self.key)
            self.state = "ended"
            self.emit(ConnectFailed(f"driver worker error: {type(exc).__name__}"))
        finally:
            self.started.set()

    async def _start(self) -> None:
        await self.host.ensure_store(self.store)
        known = await asyncio.get_running_loop().run_in_executor(None, stored_jids, self.store)
        if self.jid is not None:
            if self.jid not in known:
                self.state = "ended"
                self.emit(LoggedOut("this device's WhatsApp credentials are no longer in its "
                                    "store; link it again"))
                return
            client = NewAClient(self.store, jid=jid_from_string(self.jid))
        else:
            client = NewAClient(self.store, new_device=True)
        self.client = client
        for event_type in SUBSCRIBED:
            client.event(event_type)(self._on_event)
        client.event.qr(self._on_qr)
        self._hook_login_status(client)
        self.state = "connecting"
        self.task = await client.connect()
        self.task.add_done_callback(self._on_task_done)
        await self._settle(self.task)

    async def _settle(self, task: asyncio.Task[Any]) -> None:
        loop = asyncio.get_running_loop()
        hold = self.host.settings.start_hold_seconds
        deadline = loop.time() + hold
        await _first([self.settled.wait(), asyncio.shield(task)], hold)
        if self.settled.is_set() and not task.done():
            await asyncio.sleep(min(SETTLE_GRACE, max(0.0, deadline - loop.time())))

    def _hook_login_status(self, client: Any) -> None:
        """Catch whatsmeow's QR-loop status ("timeout", "err-..."), which neonize drops.

        The async client passes its private `__onLoginStatus` to Go and ignores it; shadowing
        it on the instance gives us the QR timeout as an event. If a neonize release renames it,
        nothing breaks: the supervisor's own QR deadline still ends the attempt.
        """
        loop = asyncio.get_running_loop()

        def on_status(_uuid: int | None, status: int | None) -> None:  # on a Go thread
            try:
                text = ctypes.string_at(status).decode() if status else ""
                loop.call_soon_threadsafe(self._on_login_status, text)
            except Exception:  # the loop may be closing; never raise into Go
                return

        vars(client)["_NewAClient__onLoginStatus"] = on_status

    def _on_login_status(self, status: str) -> None:
        if status == "timeout":
            self.state = "ended"
            self.emit(QRTimeout())
        elif status.startswith("err-"):
            self.state = "ended"
            self.emit(ConnectFailed(f"pairing failed: {status[4:].replace('-', ' ')}"))

    def _on_task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        self.state = "ended"
        if self.stopping.is_set():
            return
        if exc is None:
            self.emit(ConnectFailed("the WhatsApp connection ended"))
        else:
            log.debug("device %s: connect failed: %s", self.key, exc)
            self.emit(ConnectFailed(convert.short_reason(str(exc))))

    # -- neonize callbacks (on the loop thread) ---------------------------------------------

    async def _on_qr(self, _client: Any, data: bytes) -> None:
        try:
            if self.stopping.is_set():
                return
            event = convert.qr_code(data, self.qr_count)
            self.qr_count += 1
            self.state = "pairing"
            self.settled.set()
            self.emit(event)
        except Exception:  # neonize swallows handler exceptions silently
            log.exception("device %s: QR handler failed", self.key)

    async def _on_event(self, _client: Any, ev: Any) -> None:
        try:
            if isinstance(ev, ConnectedEv):
                self.state = "connected"
                self.settled.set()
            elif isinstance(ev, DisconnectedEv):
                self.state = "reconnecting"
            elif isinstance(ev, PairStatusEv) and ev.Status == PairStatusEv.SUCCESS:
                self.jid = convert.jid_string(ev.ID)
                self.settled.set()
            elif isinstance(ev, TERMINAL):
                self.state = "ended"
            elif isinstance(ev, KeepAliveTimeoutEv):
                log.info("device %s: keepalive timeout (%d errors)", self.key, ev.ErrorCount)
                return
            elif isinstance(ev, KeepAliveRestoredEv):
                log.info("device %s: keepalive restored", self.key)
                return
            elif isinstance(ev, StreamErrorEv):
                log.warning("device %s: stream error %s", self.key, ev.Code)
                return
            event = convert.to_driver_event(ev)
            if event is not None:
                self.emit(event)
        except Exception:  # neonize swallows handler exceptions silently
            log.exception("device %s: handling %s failed", self.key, type(ev).__name__)

    # -- stop ----------------------------------------------------------------------------------

    def close(self) -> asyncio.Task[None]:
        if self._closing is None:
            self.stopping.set()
            self._closing = self.host.spawn(self._close())
        return self._closing

    async def _close(self) -> None:
        await self.started.wait()
        try:
            if self.client is not None:
                async with self.host.gate.exclusive():
                    try:
                        await self.client.stop()
                    except Exception as exc:
                        log.warning("device %s: stop failed: %s", self.key, exc)
                task = self.task
                if task is not None and not task.done():
                    try:
                        await asyncio.wait_for(asyncio.shield(task), STOP_WAIT)
                    except TimeoutError:
                        log.warning("device %s: client did not stop within %.0fs; its thread is "
                                    "leaked until this worker is recycled", self.key, STOP_WAIT)
                        self.host.zombies.append(self)
                        self.host.post({"op": "leak", "sid": self.sid})
                    except Exception as exc:  # the connect failure was reported already
                        log.debug("device %s: connect task ended with %s", self.key, exc)
                finalizer = getattr(self.client, "_stop_finalizer", None)
                if finalizer is not None:
                    # Its GC-time Stop(uuid) could stop a later client with the same uuid.
                    finalizer.detach()
        finally:
            self.state = "stopped"
            self.done.set()
            if self.host.devices.get(self.sid) is self:
                del self.host.devices[self.sid]
            if self.host.latest.get(self.key) is self:
                del self.host.latest[self.key]


class Host:
    """The worker's side of the protocol: requests in, replies and events out."""

    def __init__(self, settings: Settings, writer: asyncio.StreamWriter) -> None:
        self.settings = settings
        self.writer = writer
        self.gate = RWGate()
        self.ffi = asyncio.Semaphore(settings.ffi_concurrency)
        self.devices: dict[int, Device] = {}
        self.latest: dict[str, Device] = {}  # per key, the newest device (Go uuid owner)
        self.stores: set[str] = set()  # stores whose schema this process has initialised
        self.zombies: list[Device] = []
        self.exit = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def post(self, message: dict[str, Any]) -> None:
        if not self.writer.is_closing():
            self.writer.write(protocol.encode(message))

    def emit(self, sid: int, event: DriverEvent) -> None:
        self.post({"op": "event", "sid": sid, "event": protocol.event_to_wire(event)})

    async def read_loop(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                message = await protocol.read_frame(reader)
                if message is None:
                    log.info("daemon closed the connection; stopping")
                    break
                self.dispatch(message)
        except (protocol.ProtocolError, ConnectionError, ValueError) as exc:
            log.error("protocol error from the daemon: %s", exc)
        finally:
            self.exit.set()

    def dispatch(self, message: dict[str, Any]) -> None:
        op = str(message.get("op"))
        rid = message.get("id")
        if op == "open":
            # Registered before the next frame is read, so a `close` right behind it finds it.
            try:
                self.open_device(message)
            except Exception as exc:
                self._reply_error(rid, DriverNotReady(f"bad open request: {exc}"))
                return
            self.post({"op": "reply", "re": rid, "ok": True, "result": None})
            return
        if op == "shutdown":
            # Answered before the exit is signalled, so the reply is never lost to the exit.
            self.spawn(self._shutdown(rid, float(message.get("budget", EOF_BUDGET))))
            return
        handler: Callable[[dict[str, Any]], Awaitable[Any]] | None = {
            "close": self.op_close, "send": self.op_send, "pair_phone": self.op_pair_phone,
            "on_whatsapp": self.op_on_whatsapp, "typing": self.op_typing,
            "logout": self.op_logout, "forget": self.op_forget,
            "inject": self.op_inject if self.settings.test_hooks else None,
        }.get(op)
        if handler is None:
            self._reply_error(rid, DriverNotReady(f"unknown request {op!r}"))
            return
        self.spawn(self._answer(rid, handler(message)))

    async def _answer(self, rid: Any, work: Awaitable[Any]) -> None:
        try:
            result = await work
        except DriverError as exc:
            self._reply_error(rid, exc)
        except Exception as exc:
            log.exception("request %s failed", rid)
            self._reply_error(rid, DriverNotReady(f"driver worker error: {type(exc).__name__}"))
        else:
            self.post({"op": "reply", "re": rid, "ok": True, "result": result})

    def _reply_error(self, rid: Any, exc: DriverError) -> None:
        self.post({"op": "reply", "re": rid, "ok": False, "error": protocol.error_to_wire(exc)})

    def _device(self, message: dict[str, Any]) -> Device:
        device = self.devices.get(int(message["sid"]))
        if device is None:
            raise NotConnected("the session is not open")
        return device

    async def ensure_store(self, store: str) -> None:
        """Create or upgrade the store's schema once, before its first client starts.

        Concurrent first connects on one store race on the schema upgrade ("failed to upgrade
        database"); one `get_all_devices_from_db` call first avoids that. Once per process,
        because each call leaks a database handle.
        """
        if store in self.stores:
            return
        Path(store).parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, ClientFactory.get_all_devices_from_db, store)
        except Exception as exc:
            raise DriverNotReady(f"cannot open this device's WhatsApp store ({exc})") from None
        self.stores.add(store)

    # -- requests ------------------------------------------------------------------------------

    def open_device(self, message: dict[str, Any]) -> None:
        jid = message.get("jid")
        device = Device(self, int(message["sid"]), str(message["key"]), str(message["store"]),
                        str(jid) if jid else None)
        self.devices[device.sid] = device
        self.spawn(device.run())

    async def op_close(self, message: dict[str, Any]) -> None:
        device = self.devices.get(int(message["sid"]))
        if device is not None:
            await asyncio.shield(device.close())

    async def op_send(self, message: dict[str, Any]) -> str:
        device = self._device(message)
        if device.state != "connected" or device.client is None:
            raise NotConnected(f"not connected to WhatsApp ({device.state})")
        client = device.client
        kind = str(message.get("kind", "text"))
        text = str(message.get("text", ""))
        preview = kind == "text" and bool(message.get("link_preview"))
        async with self.gate.shared(), self.ffi:
            if kind == "location":
                payload = outgoing.location_message(message["location"], text)
            elif kind in outgoing.MEDIA_KINDS:
                try:  # the upload: a failure here is clean, nothing reached the recipient
                    payload = await outgoing.media_message(client, kind, text, message["media"])
                except Exception as exc:
                    raise upload_error(exc) from None
            else:
                # A str goes out as extendedTextMessage and lets neonize fetch the preview.
                payload = text if preview else outgoing.text_message(text)
            to = user_jid(str(message["to"]))
            try:
                response = await client.send_message(to, payload, link_preview=preview)
            except SendMessageError as exc:
                raise send_error(str(exc)) from None
            except Exception as exc:
                if not preview:
                    raise
                # The preview is fetched before anything is sent (neonize's httpx call): a
                # site that cannot be reached costs the preview, not the message.
                log.info("link preview failed (%s); sending without it", type(exc).__name__)
                try:
                    response = await client.send_message(to, outgoing.text_message(text))
                except SendMessageError as exc2:
                    raise send_error(str(exc2)) from None
        return str(response.ID)

    async def op_on_whatsapp(self, message: dict[str, Any]) -> dict[str, bool]:
        device = self._device(message)
        if device.state != "connected" or device.client is None:
            raise NotConnected(f"not connected to WhatsApp ({device.state})")
        phones = [str(p) for p in message["phones"]]
        async with self.gate.shared(), self.ffi:
            try:  # whatsmeow wants +<international>; the answer's Query echoes it
                answers = await device.client.is_on_whatsapp(*(f"+{p}" for p in phones))
            except IsOnWhatsAppError as exc:
                raise send_error(str(exc)) from None
        found = {str(a.Query).lstrip("+"): bool(a.IsIn) for a in answers}
        return {p: found.get(p, False) for p in phones}

    async def op_typing(self, message: dict[str, Any]) -> None:
        device = self._device(message)
        if device.state != "connected" or device.client is None:
            raise NotConnected(f"not connected to WhatsApp ({device.state})")
        state = ChatPresence.CHAT_PRESENCE_COMPOSING if message.get("active") else \
            ChatPresence.CHAT_PRESENCE_PAUSED
        async with self.gate.shared(), self.ffi:
            try:
                await device.client.send_chat_presence(
                    user_jid(str(message["to"])), state, ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT)
            except SendPresenceError as exc:
                raise send_error(str(exc)) from None

    async def op_pair_phone(self, message: dict[str, Any]) -> str:
        device = self._device(message)
        if device.state != "pairing" or device.client is None:
            raise PairingError("pairing codes can be asked for only while QR codes are shown")
        async with self.gate.shared(), self.ffi:
            try:
                code = await device.client.PairPhone(str(message["phone"]), True)
            except PairPhoneError as exc:
                raise PairingError(convert.short_reason(str(exc))) from None
        return str(code)

    async def op_logout(self, message: dict[str, Any]) -> None:
        device = self._device(message)
        if device.client is None or device.task is None:
            raise NotConnected("the session never connected")
        async with self.gate.shared(), self.ffi:
            try:
                await device.client.logout()
            except LogoutError as exc:
                raise NotConnected(convert.short_reason(str(exc))) from None

    async def op_forget(self, message: dict[str, Any]) -> int:
        key = str(message["key"])
        closing = [d.close() for d in list(self.devices.values()) if d.key == key]
        if closing:
            await asyncio.wait(closing, timeout=STOP_WAIT)
        removed = 0
        for path in message.get("paths", []):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(path))
                removed += 1
        self.stores.discard(str(message.get("store", "")))
        return removed

    async def op_inject(self, message: dict[str, Any]) -> None:
        """Feed a serialized neonize event to a client, exactly as Go's callback does.

        For offline tests: no WhatsApp server can produce these events, but this is the same
        entry point (`Event.execute` with a pointer to the protobuf bytes), so everything after
        it (handler registration, our handlers, conversion, the wire) is the production path.
        """
        kind = str(message["type"])
        if kind == "abort":  # a real Go fault: get_me on a client Go never registered (§8)
            await NewAClient(f"{message.get('store', 'abort')}.db").get_me()
            return
        device = self._device(message)
        client = device.client
        if client is None:
            raise NotConnected("the session has no client")
        data = base64.b64decode(str(message["data"]))
        buffer = ctypes.create_string_buffer(data, len(data))
        if kind == "qr":  # Go's QR callback: neonize's private __onQr, then our handler
            vars(type(client))["_NewAClient__onQr"](client, None, ctypes.addressof(buffer))
        elif kind == "login_status":  # Go's QR-loop status callback, which we hook
            vars(client)["_NewAClient__onLoginStatus"](None, ctypes.addressof(buffer))
        else:
            event_type = getattr(neonize_pb, kind)
            client.event.execute(client.uuid, ctypes.addressof(buffer), len(data),
                                 EVENT_TO_INT[event_type])
        await asyncio.sleep(0.01)  # let the handler scheduled by the callback run

    async def _shutdown(self, rid: Any, budget: float) -> None:
        try:
            await self.stop_all(budget)
        finally:
            self.post({"op": "reply", "re": rid, "ok": True, "result": None})
            self.exit.set()

    async def stop_all(self, budget: float) -> None:
        closing = [d.close() for d in list(self.devices.values())]
        if not closing:
            return
        _, pending = await asyncio.wait(closing, timeout=budget)
        if pending:
            log.warning("%d clients did not stop within %.1fs", len(pending), budget)


async def serve(fd: int, settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=settings.executor_threads,
                                                 thread_name_prefix="neonize"))
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    host = Host(settings, writer)
    loop.add_signal_handler(signal.SIGTERM, host.exit.set)
    host.post({"op": "hello", "pid": os.getpid(), "neonize": neonize.__version__,
               "executor": settings.executor_threads})
    reading = asyncio.ensure_future(host.read_loop(reader))
    await host.exit.wait()
    await host.stop_all(EOF_BUDGET)
    reading.cancel()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(writer.drain(), 1.0)
    writer.close()
    return 0


def run(fd: int, settings: dict[str, Any]) -> int:
    """Serve the daemon until it says stop, hangs up, or SIGTERM; the exit code."""
    # Not asyncio.run(): its cleanup cancels pending tasks, and cancelling a neonize connect
    # task runs a blocking Go Stop on the loop thread. The caller exits with os._exit instead.
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop.run_until_complete(serve(fd, Settings.from_dict(settings)))
