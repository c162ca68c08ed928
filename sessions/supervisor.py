"""One device's supervisor: owns its driver session, its state and its retries.

The supervisor is an actor: driver events and lifecycle commands arrive in one inbox and are handled
one at a time, so the state machine has a single writer. Timers (retry backoff, the QR deadline, a
ban's expiry) are deadlines checked between messages. Sends and pairing-code requests run in the
caller's task against the current session, so a slow send never holds up the device's events.

Every start has its stop: a session is closed before a new one is opened, on logout, on terminal
events (logged out, banned, replaced), and when the supervisor stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from gateway.config import DeliveryConfig, SessionsConfig
from gateway.errors import DriverError, NotConnected, PairingError, SendFailed
from gateway.logs import device_id
from gateway.media import MediaStore
from gateway.store import Device, Store
from sessions.backoff import Backoff
from sessions.dispatch import Dispatcher
from sessions.drivers.base import DeviceRef, Driver, DriverSession, OutgoingMessage
from sessions.events import (
    Banned,
    Connected,
    ConnectFailed,
    Disconnected,
    DriverEvent,
    InboundMessage,
    LoggedOut,
    PairSuccess,
    QRCode,
    QRTimeout,
    Receipt,
    Replaced,
)
from sessions.outcomes import Outcomes
from sessions.state import DeviceStatus

log = logging.getLogger("wagate.sessions")

Mode = Literal["idle", "connect", "pair"]
Notify = Callable[["DeviceSupervisor", str, dict[str, Any]], Awaitable[None]]

QR_GRACE = 5.0  # seconds past the driver's QR window before the supervisor gives up itself
FIRST_QR_WAIT = 30.0  # how long a pairing-code request waits for the pairing session to start


@dataclass
class _Command:
    name: Literal["pair", "restart", "logout", "stop"]
    done: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop()
                                       .create_future())


class DeviceSupervisor:
    def __init__(self, device: Device, driver: Driver, store: Store, settings: SessionsConfig,
                 delivery: DeliveryConfig, outcomes: Outcomes, media: MediaStore,
                 notify: Notify | None = None) -> None:
        self.device_id = device.id
        self.partner_id = device.partner_id
        self.key = device.session_id
        self.name = device.name
        self.driver = driver
        self.store = store
        self.settings = settings
        self._notify = notify
        self.linked = device.linked
        self.phone = device.phone
        self.jid = device.jid
        self.status = _status(device.status)
        self.since = device.status_since
        self.last_error = device.last_error
        self.qr: str | None = None
        self.qr_expires_at: float | None = None
        self._qr_ready = asyncio.Event()
        self._changed = asyncio.Event()
        self._session: DriverSession | None = None
        self._mode: Mode = "idle"
        self._inbox: asyncio.Queue[DriverEvent | _Command] = asyncio.Queue()
        self._retry_at: float | None = None
        self._deadline: float | None = None
        self._backoff = Backoff(settings.backoff_initial, settings.backoff_max,
                                settings.backoff_jitter)
        self._stopping = False
        self._generation = 0
        self._qr_shown = False  # did this pairing round show any QR code?
        self.stopped = anyio.Event()
        self.outcomes = outcomes
        self.dispatcher = Dispatcher(self, store, delivery, outcomes, media)

    # -- the actor ---------------------------------------------------------------------------

    async def run(self) -> None:
        device_id.set(self.key)  # this task's log lines name the device
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._dispatch, name=f"dispatch {self.key}")
            try:
                await self._act()
            finally:
                tg.cancel_scope.cancel()

    async def _dispatch(self) -> None:
        """The outbox drain; a failure pauses it, never the supervisor."""
        while True:
            try:
                await self.dispatcher.run()
            except Exception:
                log.exception("device %s: dispatcher failed; resuming", self.key)
                await anyio.sleep(1)

    async def _act(self) -> None:
        try:
            if self.linked:
                await self._open("connect")
            elif self.status is DeviceStatus.PAIRING:
                await self._set(DeviceStatus.UNLINKED, "pairing was interrupted by a restart")
            while not self._stopping:
                item = await self._next()
                try:
                    if item is None:
                        await self._on_timer()
                    elif isinstance(item, _Command):
                        await self._on_command(item)
                    else:
                        await self._on_event(item)
                except Exception as exc:  # one bad event must not end the device's supervision
                    log.exception("device %s: error handling %s", self.key, type(item).__name__)
                    if isinstance(item, _Command) and not item.done.done():
                        item.done.set_exception(exc)
        finally:
            with anyio.CancelScope(shield=True):
                await self._close_session()
                await self._drain_inbox()
                self.stopped.set()

    async def _next(self) -> DriverEvent | _Command | None:
        deadlines = [t for t in (self._retry_at, self._deadline) if t is not None]
        if not deadlines:
            return await self._inbox.get()
        timeout = max(0.0, min(deadlines) - time.time())
        try:
            return await asyncio.wait_for(self._inbox.get(), timeout)
        except TimeoutError:
            return None

    async def _on_timer(self) -> None:
        now = time.time()
        if self._deadline is not None and now >= self._deadline:
            await self._pairing_expired()
        elif self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            await self._open(self._mode)

    async def _on_command(self, cmd: _Command) -> None:
        if cmd.name == "pair":
            if not self.linked and not (self._mode == "pair" and self._session is not None):
                self._backoff.reset()
                await self._open("pair")
        elif cmd.name == "restart":
            self._backoff.reset()
            if self.linked:
                await self._open("connect")
            elif self._mode == "pair":
                await self._open("pair")
        elif cmd.name == "logout":
            await self._logout()
        elif cmd.name == "stop":
            self._stopping = True
            await self._close_session()
        if not cmd.done.done():
            cmd.done.set_result(None)

    async def _on_event(self, event: DriverEvent) -> None:
        match event:
            case QRCode(code, expires_in):
                if self._mode != "pair":
                    return
                first = self.qr is None and not self._qr_ready.is_set()
                self.qr = code
                self.qr_expires_at = time.time() + expires_in
                self._qr_ready.set()
                self._qr_shown = True
                self._touch()
                if first:
                    self._deadline = time.time() + self.driver.qr_window + QR_GRACE
                    await self._set(DeviceStatus.PAIRING, None)
                await self._emit("device.qr", {"expires_in": expires_in})
            case QRTimeout():
                await self._pairing_expired()
            case PairSuccess(phone, jid):
                self.linked, self.phone, self.jid = True, phone, jid
                self._mode, self._deadline = "connect", None
                self._clear_qr()
                await self._set(DeviceStatus.CONNECTING, None)
                await self._emit("device.paired", {"phone": phone})
            case Connected():
                self._backoff.reset()
                self._retry_at = None
                await self._set(DeviceStatus.CONNECTED, None)
                await self._emit("device.connected", {"phone": self.phone})
            case Disconnected(reason):
                if self.status is DeviceStatus.CONNECTED:
                    await self._set(DeviceStatus.DISCONNECTED, reason)
                    await self._emit("device.disconnected", {"reason": reason})
            case ConnectFailed(reason):
                await self._failed(reason)
            case LoggedOut(reason):
                await self._close_session()
                await self._unlink(DeviceStatus.LOGGED_OUT, reason)
                await self._emit("device.logged_out", {"reason": reason})
            case Banned(reason, expires_at):
                await self._close_session()
                self._retry_at = expires_at or time.time() + self._backoff.next_delay()
                await self._set(DeviceStatus.BANNED, reason)
                await self._emit("device.banned", {"reason": reason, "expires_at": expires_at})
            case Replaced():
                await self._close_session()
                self._mode = "idle"
                await self._set(DeviceStatus.REPLACED, "another client opened this session")
                await self._emit("device.disconnected", {"reason": "replaced"})
            case Receipt(wa_ids, status):
                await self.store.apply_receipt(self.device_id, list(wa_ids), _receipt(status))
            case InboundMessage() as msg:
                await self.store.add_inbound(self.device_id, msg.wa_id, msg.sender, msg.chat,
                                             msg.kind, msg.text, msg.is_group)
                await self._emit("message.received", {
                    "message_id": msg.wa_id, "from": msg.sender, "chat": msg.chat,
                    "kind": msg.kind, "message": msg.text, "is_group": msg.is_group})

    # -- transitions -------------------------------------------------------------------------

    async def _open(self, mode: Mode) -> None:
        await self._close_session()
        self._mode = mode
        self._retry_at = None
        if mode == "idle":
            return
        if mode == "pair" and self._deadline is None:
            # A new pairing round. The deadline covers the time to the first QR code; it is
            # reset to the QR window when that arrives.
            self._deadline = time.time() + self.driver.qr_window + QR_GRACE
            self._qr_shown = False
        ref = DeviceRef(self.key, self.jid if mode == "connect" else None)
        self._generation += 1
        generation = self._generation

        def sink(event: DriverEvent) -> None:
            # A closed session's late lifecycle events are stale; its receipts and inbound
            # messages are still facts worth keeping.
            if generation == self._generation or isinstance(event, Receipt | InboundMessage):
                self._inbox.put_nowait(event)

        self._session = self.driver.open_session(ref, sink)
        await self._set(DeviceStatus.CONNECTING if mode == "connect" else DeviceStatus.PAIRING,
                        self.last_error)
        try:
            await self._session.connect()
        except DriverError as exc:
            await self._failed(exc.reason)
        except Exception as exc:
            log.exception("device %s: driver failed to connect", self.key)
            await self._failed(f"driver error: {type(exc).__name__}")

    async def _failed(self, reason: str) -> None:
        await self._close_session()
        delay = self._backoff.next_delay()
        self._retry_at = time.time() + delay
        log.info("device %s: connect failed (%s); retry in %.1fs", self.key, reason, delay)
        status = DeviceStatus.DISCONNECTED if self.linked else DeviceStatus.PAIRING
        await self._set(status, reason)

    async def _pairing_expired(self) -> None:
        await self._close_session()
        self._mode, self._deadline, self._retry_at = "idle", None, None
        if self._qr_shown:
            reason = "QR code expired before it was scanned"
        else:  # keep what stopped pairing from starting (e.g. no route to WhatsApp)
            reason = f"could not start pairing: {self.last_error or 'no QR code arrived'}"
        await self._set(DeviceStatus.UNLINKED, reason)

    async def _logout(self) -> None:
        if self._session is not None and self.linked:
            try:
                await self._session.logout()
            except DriverError as exc:
                log.info("device %s: logout: %s", self.key, exc.reason)
        await self._close_session()
        await self._unlink(DeviceStatus.LOGGED_OUT, "logged out")
        await self._emit("device.logged_out", {"reason": "logout"})

    async def _unlink(self, status: DeviceStatus, reason: str) -> None:
        self._mode, self._retry_at, self._deadline = "idle", None, None
        for message in await self.store.fail_queued(self.device_id, f"device {status.value}"):
            self.outcomes.resolve(message.id, "failed")
        self.linked, self.phone, self.jid = False, None, None
        try:
            await self.driver.forget(self.key)
        except DriverError as exc:
            log.warning("device %s: could not delete credentials: %s", self.key, exc.reason)
        await self._set(status, reason, clear_identity=True)

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        self._generation += 1
        self._clear_qr()
        if session is not None:
            try:
                await session.close()
            except Exception:
                log.exception("device %s: closing the session failed", self.key)

    def _clear_qr(self) -> None:
        self.qr = None
        self.qr_expires_at = None
        self._qr_ready.clear()

    async def _set(self, status: DeviceStatus, error: str | None, *,
                   clear_identity: bool = False) -> None:
        if status is not self.status:
            self.since = time.time()
            log.info("device %s: %s -> %s%s", self.key, self.status, status,
                     f" ({error})" if error else "")
        self.status, self.last_error = status, error
        self._touch()
        await self.store.set_device_state(
            self.device_id, status.value, linked=self.linked, phone=self.phone, jid=self.jid,
            last_error=error, clear_identity=clear_identity)

    async def _emit(self, name: str, data: dict[str, Any]) -> None:
        if self._notify is not None:
            try:
                await self._notify(self, name, data)
            except Exception:
                log.exception("device %s: event listener failed", self.key)

    async def _drain_inbox(self) -> None:
        """What is left once the supervisor stops: commands are answered; receipts and inbound
        messages that arrived while the session closed are still stored (WhatsApp does not send
        them again); lifecycle events of a closed session are stale and dropped."""
        while not self._inbox.empty():
            item = self._inbox.get_nowait()
            if isinstance(item, _Command):
                if not item.done.done():
                    item.done.set_result(None)
            elif isinstance(item, Receipt | InboundMessage):
                try:
                    with anyio.move_on_after(5):
                        await self._on_event(item)
                except Exception:
                    log.exception("device %s: could not store a late %s", self.key,
                                  type(item).__name__)

    # -- called from other tasks ---------------------------------------------------------------

    async def _call(self, name: Literal["pair", "restart", "logout", "stop"]) -> None:
        if self.stopped.is_set():
            raise NotConnected("device supervisor has stopped")
        cmd = _Command(name)
        self._inbox.put_nowait(cmd)
        await cmd.done

    async def request_pairing(self) -> None:
        await self._call("pair")

    async def restart(self) -> None:
        await self._call("restart")

    async def logout(self) -> None:
        await self._call("logout")

    async def stop(self) -> None:
        if not self.stopped.is_set():
            # First the dispatcher settles its hand-off (taking nothing new) while the actor
            # goes on storing receipts and inbound messages; then the session closes.
            with anyio.move_on_after(self.settings.send_timeout):
                await self.dispatcher.close()
            await self._call("stop")

    async def pair_phone(self, phone: str) -> str:
        if self.linked:
            raise PairingError("device is already linked")
        await self.request_pairing()
        try:
            await asyncio.wait_for(self._qr_ready.wait(), FIRST_QR_WAIT)
        except TimeoutError:
            raise PairingError(self.last_error or "pairing did not start in time") from None
        session = self._session
        if session is None:
            raise PairingError("pairing is not running")
        return await session.pair_phone(phone)

    async def send(self, message: OutgoingMessage, message_id: str | None) -> str:
        session = self._session
        if self.status is not DeviceStatus.CONNECTED or session is None:
            raise NotConnected(f"device is {self.status.value}")
        try:
            async with asyncio.timeout(self.settings.send_timeout):  # no task per message
                return await session.send(message, message_id)
        except TimeoutError:
            # It may have gone out: count it as a failed attempt (a resend is at-least-once).
            raise SendFailed("WhatsApp did not acknowledge the message in time") from None

    async def on_whatsapp(self, phones: list[str], limit: float) -> dict[str, bool]:
        session = self._session
        if self.status is not DeviceStatus.CONNECTED or session is None:
            raise NotConnected(f"device is {self.status.value}")
        try:
            async with asyncio.timeout(limit):
                return await session.on_whatsapp(phones)
        except TimeoutError:
            raise NotConnected("WhatsApp did not answer the on-WhatsApp check in time") from None

    async def typing(self, to: str, active: bool) -> None:
        """Best effort: a failed presence update never holds a message back."""
        session = self._session
        if self.status is not DeviceStatus.CONNECTED or session is None:
            return
        try:
            async with asyncio.timeout(self.settings.send_timeout):
                await session.typing(to, active)
        except Exception as exc:
            log.debug("device %s: typing indicator failed: %r", self.key, exc)

    def _touch(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self) -> None:
        """Wait for the next change of status or QR code (for pollers and live pages)."""
        await self._changed.wait()


def _status(value: str) -> DeviceStatus:
    try:
        return DeviceStatus(value)
    except ValueError:
        return DeviceStatus.NEW


def _receipt(status: str) -> str:
    return "read" if status in ("read", "played") else "delivered"
