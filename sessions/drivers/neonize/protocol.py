"""The wire between the daemon and a neonize worker process.

Frames are a 4-byte big-endian length and a UTF-8 JSON object, over a socketpair the worker gets
as an inherited file descriptor. Not stdout: Go code inside neonize prints to fd 1 and 2 directly
("Press Ctrl+C to exit", panics), which would corrupt a stdout-based protocol. Those lines go to
a pipe the parent relays into its log instead.

Daemon -> worker requests carry an `id`; the worker answers each with a `reply` carrying `re`:
    open {sid, key, store, jid}   start a device (answered at once; progress comes as events)
    close {sid}                   stop it (answered when the Go client is stopped)
    send {sid, to, text}          -> WhatsApp's message id
    pair_phone {sid, phone}       -> pairing code
    logout {sid}
    forget {key, paths}           wait for the key's devices to stop, delete its store files
    shutdown {budget}             stop every device within `budget` seconds, then exit

Worker -> daemon, unsolicited:
    hello {pid, neonize, executor}   the worker imported neonize and is ready
    event {sid, event}               a driver event for one session (see `event_to_wire`)
    leak {sid}                       a client did not stop in time; recycle this worker
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import struct
from typing import Any

from gateway.errors import DriverError, DriverNotReady, NotConnected, PairingError, SendFailed
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

HEADER = struct.Struct(">I")
MAX_FRAME = 16 * 1024 * 1024  # far above any event or reply; a bigger length means a broken peer

EVENT_TYPES: dict[str, type[Any]] = {
    cls.__name__: cls
    for cls in (QRCode, QRTimeout, PairSuccess, Connected, Disconnected, ConnectFailed, LoggedOut,
                Banned, Replaced, Receipt, InboundMessage)
}

ERROR_KINDS: dict[str, type[DriverError]] = {
    "not_ready": DriverNotReady,
    "not_connected": NotConnected,
    "send_failed": SendFailed,
    "pairing": PairingError,
}


class ProtocolError(Exception):
    """The peer sent something that is not a frame of this protocol."""


def encode(message: dict[str, Any]) -> bytes:
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(body) > MAX_FRAME:
        raise ProtocolError(f"frame of {len(body)} bytes is too large")
    return HEADER.pack(len(body)) + body


async def read_frame(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None at a clean end of stream (the peer closed or died)."""
    try:
        header = await reader.readexactly(HEADER.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise ProtocolError("stream ended inside a frame header") from None
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes is too large")
    try:
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError:
        raise ProtocolError("stream ended inside a frame") from None
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ProtocolError("a frame must hold a JSON object")
    return message


def event_to_wire(event: DriverEvent) -> dict[str, Any]:
    data: dict[str, Any] = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        data[f.name] = list(value) if isinstance(value, tuple) else value
    return data


def event_from_wire(data: dict[str, Any]) -> DriverEvent:
    cls = EVENT_TYPES.get(str(data.get("type")))
    if cls is None:
        raise ProtocolError(f"unknown event type {data.get('type')!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    if cls is Receipt:
        kwargs["wa_ids"] = tuple(kwargs.get("wa_ids", ()))
    event: DriverEvent = cls(**kwargs)
    return event


def error_to_wire(exc: DriverError) -> dict[str, str]:
    for kind, cls in ERROR_KINDS.items():
        if type(exc) is cls:
            return {"kind": kind, "reason": exc.reason}
    return {"kind": "not_ready", "reason": exc.reason}


def error_from_wire(data: Any) -> DriverError:
    if not isinstance(data, dict):
        return DriverNotReady("driver worker sent a malformed error")
    cls = ERROR_KINDS.get(str(data.get("kind")), DriverNotReady)
    return cls(str(data.get("reason") or "driver worker error"))
