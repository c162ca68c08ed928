"""An in-process stand-in for WhatsApp multi-device, behaving as it does through whatsmeow.

It is a product feature (demo mode, load tests), not a test double: QR codes rotate on
whatsmeow's schedule (6 codes, 60 s then 20 s each, configurable), a phone "scans" a code or enters
a pairing code, linked accounts and the messages WhatsApp received survive restarts (they live in
`simulated.db` in the data directory, like neonize's store), sends get WhatsApp-style ids and
delivered/read receipts after realistic delays, and failures can be injected.

The "phone side" (scan, inbound message, unlink, ban, drop) is driven through `SimulatedWhatsApp`,
which the `/sim` HTTP routes and the `wagate sim` CLI expose.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gateway.config import SimulatedConfig
from gateway.errors import DriverNotReady, NotConnected, PairingError, SendFailed
from sessions.drivers.base import DeviceRef, OutgoingMessage
from sessions.events import (
    Banned,
    Connected,
    Disconnected,
    EventSink,
    InboundMessage,
    LoggedOut,
    PairSuccess,
    QRCode,
    QRTimeout,
    Receipt,
)
from sessions.ids import new_message_id

PAIR_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTVWXYZ"  # whatsmeow's pairing-code alphabet

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    key TEXT PRIMARY KEY, phone TEXT NOT NULL, jid TEXT NOT NULL, banned_until REAL
);
CREATE TABLE IF NOT EXISTS received (
    seq INTEGER PRIMARY KEY, key TEXT NOT NULL, wa_id TEXT NOT NULL, recipient TEXT NOT NULL,
    kind TEXT NOT NULL, body TEXT NOT NULL, at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 1,
    payload TEXT, UNIQUE (key, wa_id)
);
"""


def _b64(n: int) -> str:
    return base64.b64encode(secrets.token_bytes(n)).decode()


@dataclass
class Faults:
    """Per-device failure injection, on top of the driver-wide rates in the config."""

    connect_failure_rate: float = 0.0
    send_failure_rate: float = 0.0
    send_delay: float = 0.0


@dataclass
class _Account:
    phone: str
    jid: str
    banned_until: float | None


class SimulatedSession:
    """One device's connection to the simulated WhatsApp."""

    def __init__(self, world: SimulatedWhatsApp, device: DeviceRef, sink: EventSink) -> None:
        self.world = world
        self.key = device.key
        self.sink = sink
        self.state = "idle"  # idle | connecting | pairing | connected | closed
        self.qr: str | None = None
        self.pair_code: str | None = None
        self.pair_phone_number: str | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._qr_keys = f"{_b64(32)},{_b64(32)},{_b64(32)}"
        self._turn: asyncio.Future[None] | None = None  # the previous send's place in line
        self._just_sent: list[tuple[str, str]] = []  # (wa_id, chat) awaiting receipt timers

    # -- driver side -------------------------------------------------------------------------

    async def connect(self) -> None:
        if self.state == "closed":
            raise DriverNotReady("session is closed")
        cfg = self.world.config
        rate = max(cfg.connect_failure_rate, self.world.faults_for(self.key).connect_failure_rate)
        if rate and random.random() < rate:
            raise DriverNotReady("simulated connect failure (failure injection)")
        self.world.sessions[self.key] = self
        self.state = "connecting"
        self._later(cfg.connect_seconds, self._handshake)

    def _handshake(self) -> None:
        account = self.world.accounts.get(self.key)
        if account is None:
            self.state = "pairing"
            self._show_qr(0)
        elif account.banned_until and account.banned_until > time.time():
            self.state = "idle"
            self.sink(Banned("temporarily banned", account.banned_until))
        else:
            self.state = "connected"
            self.sink(Connected())

    def _show_qr(self, index: int) -> None:
        if self.state != "pairing":
            return
        cfg = self.world.config
        if index >= cfg.qr_codes:
            self.state = "idle"
            self.qr = None
            self.pair_code = None
            self.sink(QRTimeout())
            return
        lifetime = cfg.qr_first_seconds if index == 0 else cfg.qr_next_seconds
        self.qr = f"2@{_b64(24)},{self._qr_keys}"
        self.sink(QRCode(self.qr, lifetime))
        self._later(lifetime, lambda: self._show_qr(index + 1))

    async def pair_phone(self, phone: str) -> str:
        if self.state != "pairing":
            raise PairingError("pairing codes can be asked for only while QR codes are shown")
        if len(phone) <= 6 or phone.startswith("0"):
            raise PairingError("phone number must be in international format")
        self.pair_code = "".join(secrets.choice(PAIR_ALPHABET) for _ in range(8))
        self.pair_phone_number = phone
        return self.pair_code

    async def send(self, message: OutgoingMessage, message_id: str | None) -> str:
        """Concurrent sends are recorded in the order they were called (`ordered_pipelining`):
        each takes its place in line before its first await and records only after the send
        ahead of it has recorded or failed."""
        if self.state != "connected":
            raise NotConnected("not connected to WhatsApp")
        cfg = self.world.config
        faults = self.world.faults_for(self.key)
        ahead, mine = self._turn, asyncio.get_running_loop().create_future()
        self._turn = mine
        try:
            if cfg.send_seconds or faults.send_delay:
                await asyncio.sleep(cfg.send_seconds + faults.send_delay)
            if ahead is not None and not ahead.done():
                await ahead
            if self.state != "connected":
                raise NotConnected("connection lost while sending")
            rate = max(cfg.send_failure_rate, faults.send_failure_rate)
            if rate and random.random() < rate:
                raise SendFailed("simulated send failure (failure injection)")
            if message.media is not None:
                _upload(message)
            wa_id = message_id or new_message_id()
            recorded = self.world.record_soon(self.key, wa_id, message)
        finally:
            if not mine.done():
                mine.set_result(None)
            if self._turn is mine:
                self._turn = None
        await recorded  # on disk in simulated.db before WhatsApp answers with the id
        if cfg.delivered_seconds >= 0:
            if not self._just_sent:
                asyncio.get_running_loop().call_soon(self._schedule_receipts)
            self._just_sent.append((wa_id, message.to))
        return wa_id

    def _schedule_receipts(self) -> None:
        """Receipt timers for everything sent in the last loop pass: one timer per status for
        the lot, and receipts grouped per chat, as WhatsApp groups them."""
        sent, self._just_sent = self._just_sent, []
        cfg = self.world.config
        if cfg.delivered_seconds >= 0 and self.state != "closed":
            self._later(cfg.delivered_seconds, lambda: self._receipts(sent, "delivered"))
            if cfg.read_seconds >= 0:
                self._later(cfg.delivered_seconds + cfg.read_seconds,
                            lambda: self._receipts(sent, "read"))

    def _receipts(self, sent: list[tuple[str, str]], status: str) -> None:
        if self.state != "connected":
            return
        by_chat: dict[str, list[str]] = {}
        for wa_id, chat in sent:
            by_chat.setdefault(chat, []).append(wa_id)
        for chat, ids in by_chat.items():
            self.sink(Receipt(tuple(ids), status, chat))

    async def on_whatsapp(self, phones: list[str]) -> dict[str, bool]:
        if self.state != "connected":
            raise NotConnected("not connected to WhatsApp")
        absent = self.world.config.absent_numbers()
        return {phone: phone not in absent for phone in phones}

    async def typing(self, to: str, active: bool) -> None:
        if self.state != "connected":
            raise NotConnected("not connected to WhatsApp")
        self.world.typing.setdefault(self.key, []).append((to, active))

    async def logout(self) -> None:
        if self.key not in self.world.accounts:
            raise NotConnected("the store doesn't contain a device JID")
        await self.world.unlink(self.key)
        self.state = "idle"

    async def close(self) -> None:
        self.state = "closed"
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()
        if self.world.sessions.get(self.key) is self:
            del self.world.sessions[self.key]

    def _later(self, delay: float, fn: Any) -> None:
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._timers.discard(handle)
            if self.state != "closed":
                fn()

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)


class SimulatedWhatsApp:
    """The simulated WhatsApp service and the phones behind it."""

    def __init__(self, config: SimulatedConfig, path: Path) -> None:
        self.config = config
        self.path = path
        self.accounts: dict[str, _Account] = {}
        self.sessions: dict[str, SimulatedSession] = {}
        self.faults: dict[str, Faults] = {}
        self.typing: dict[str, list[tuple[str, bool]]] = {}  # "typing…" shown, per device
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()
        self._records: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(received)")}
        if "payload" not in columns:  # a simulated.db from before message kinds
            self._db.execute("ALTER TABLE received ADD COLUMN payload TEXT")
        for key, phone, jid, banned in self._db.execute("SELECT * FROM accounts"):
            self.accounts[key] = _Account(phone, jid, banned)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise DriverNotReady("simulated WhatsApp is not running")
        return self._db

    async def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        async with self._lock:
            await asyncio.to_thread(self.db.execute, sql, args)

    def record_soon(self, key: str, wa_id: str, message: OutgoingMessage) -> asyncio.Future[None]:
        """Queue a received message; the future resolves once it is committed. Records queued
        in one loop pass share one transaction (group commit, as the gateway's store does),
        in the order they were queued."""
        future = asyncio.get_running_loop().create_future()
        self._records.append(((key, wa_id, message.to, message.kind, message.text, time.time(),
                               _payload(message)), future))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush())
        return future

    async def record(self, key: str, wa_id: str, message: OutgoingMessage) -> None:
        await self.record_soon(key, wa_id, message)

    async def _flush(self) -> None:
        try:
            while self._records:
                batch, self._records = self._records, []
                try:
                    async with self._lock:
                        await asyncio.to_thread(self._insert, [row for row, _ in batch])
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _, future in batch:
                        if not future.done():
                            future.set_result(None)
        finally:
            self._flushing = None

    def _insert(self, rows: list[tuple[Any, ...]]) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            # Multi-row VALUES: one SQLite call per 256 rows (executemany is one per row, each
            # releasing and retaking the GIL the event loop needs).
            for start in range(0, len(rows), 256):
                chunk = rows[start:start + 256]
                values = ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
                db.execute(
                    f"INSERT INTO received (key, wa_id, recipient, kind, body, at, payload) "  # noqa: S608
                    f"VALUES {values} "
                    "ON CONFLICT (key, wa_id) DO UPDATE SET attempts = attempts + 1",
                    [v for row in chunk for v in row])
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def drain(self) -> None:
        """Wait for queued records to be committed (before closing)."""
        while self._flushing is not None:
            await asyncio.shield(self._flushing)

    async def unlink(self, key: str) -> None:
        self.accounts.pop(key, None)
        await self._write("DELETE FROM accounts WHERE key = ?", (key,))

    def faults_for(self, key: str) -> Faults:
        return self.faults.get(key) or Faults()

    # -- the phone's side --------------------------------------------------------------------

    def session(self, key: str) -> SimulatedSession | None:
        return self.sessions.get(key)

    def state(self, key: str) -> dict[str, Any]:
        session = self.sessions.get(key)
        account = self.accounts.get(key)
        return {
            "session": session.state if session else "offline",
            "linked": account is not None,
            "phone": account.phone if account else None,
            "jid": account.jid if account else None,
            "qr": session.qr if session and session.state == "pairing" else None,
            "pairing_code": session.pair_code if session and session.state == "pairing" else None,
            "banned_until": account.banned_until if account else None,
            "typing": len(self.typing.get(key, ())),
        }

    async def scan(self, key: str, phone: str, code: str | None = None) -> str:
        """The phone scans the current QR code (or enters the pairing code); returns the JID."""
        session = self.sessions.get(key)
        if session is None or session.state != "pairing" or session.qr is None:
            raise PairingError("no QR code is being shown for this device")
        if code is not None:
            if session.pair_code is None or code.replace("-", "").upper() != session.pair_code:
                raise PairingError("wrong pairing code")
            if session.pair_phone_number and session.pair_phone_number != phone:
                raise PairingError("the pairing code was issued for another phone number")
        jid = f"{phone}:{random.randint(1, 99)}@s.whatsapp.net"
        self.accounts[key] = _Account(phone, jid, None)
        await self._write("INSERT OR REPLACE INTO accounts (key, phone, jid) VALUES (?, ?, ?)",
                          (key, phone, jid))
        session.state = "connecting"
        session.qr = None
        session.pair_code = None
        session.sink(PairSuccess(phone, jid))
        session._later(self.config.connect_seconds, session._handshake)
        return jid

    def inbound(self, key: str, sender: str, text: str, *, chat: str | None = None,
                is_group: bool = False) -> str:
        session = self.sessions.get(key)
        if session is None or session.state != "connected":
            raise NotConnected("device is not connected")
        wa_id = new_message_id()
        session.sink(InboundMessage(wa_id, sender, chat or sender, "text", text, is_group,
                                    time.time()))
        return wa_id

    async def phone_logout(self, key: str) -> None:
        """The user removes the linked device in WhatsApp on the phone."""
        await self.unlink(key)
        session = self.sessions.get(key)
        if session is not None and session.state in ("connected", "connecting"):
            session.state = "idle"
            session.sink(LoggedOut("device removed from the phone"))

    async def ban(self, key: str, seconds: float) -> None:
        account = self.accounts.get(key)
        if account is None:
            raise NotConnected("device is not linked")
        account.banned_until = time.time() + seconds
        await self._write("UPDATE accounts SET banned_until = ? WHERE key = ?",
                          (account.banned_until, key))
        session = self.sessions.get(key)
        if session is not None and session.state == "connected":
            session.state = "idle"
            session.sink(Banned("temporarily banned", account.banned_until))

    def drop(self, key: str) -> None:
        """The connection drops; like whatsmeow, the client reconnects by itself."""
        session = self.sessions.get(key)
        if session is None or session.state != "connected":
            raise NotConnected("device is not connected")
        session.state = "connecting"
        session.sink(Disconnected("connection dropped"))
        session._later(self.config.reconnect_seconds, session._handshake)

    def received(self, key: str, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT wa_id, recipient, kind, body, at, attempts, payload FROM received "
            "WHERE key = ? ORDER BY seq LIMIT ?", (key, limit)).fetchall()
        return [{"message_id": r[0], "to": r[1], "kind": r[2], "message": r[3], "at": r[4],
                 "attempts": r[5], **(orjson.loads(r[6]) if r[6] else {})} for r in rows]


def _upload(message: OutgoingMessage) -> None:
    """WhatsApp takes media only after an upload: the file must be there, whole."""
    media = message.media
    assert media is not None
    try:
        size = os.stat(media.path).st_size
    except OSError:
        raise SendFailed("media upload failed: the media file is gone") from None
    if size != media.size:
        raise SendFailed("media upload failed: the media file changed size")


def _payload(message: OutgoingMessage) -> str | None:
    """What WhatsApp got besides the text: media details, a location, the preview flag."""
    data: dict[str, Any] = {}
    if message.media is not None:
        data["media"] = {"mime": message.media.mime, "size": message.media.size,
                         "filename": message.media.filename}
    if message.location is not None:
        data["location"] = {"latitude": message.location.latitude,
                            "longitude": message.location.longitude,
                            "name": message.location.name, "address": message.location.address}
    if message.link_preview:
        data["link_preview"] = True
    return orjson.dumps(data).decode() if data else None


class SimulatedDriver:
    name = "simulated"
    honours_message_ids = True
    ordered_pipelining = True  # concurrent sends are recorded in call order (see `send`)

    def __init__(self, config: SimulatedConfig, data_dir: Path) -> None:
        self.config = config
        self.world = SimulatedWhatsApp(config, data_dir / "simulated.db")
        self.qr_window = config.qr_first_seconds + (config.qr_codes - 1) * config.qr_next_seconds

    async def start(self) -> None:
        self.world.open()

    async def stop(self) -> None:
        for session in list(self.world.sessions.values()):
            await session.close()
        await self.world.drain()
        self.world.close()

    def open_session(self, device: DeviceRef, sink: EventSink) -> SimulatedSession:
        return SimulatedSession(self.world, device, sink)

    async def forget(self, key: str) -> None:
        await self.world.unlink(key)
