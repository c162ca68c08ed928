"""The one seam between wagate and WhatsApp.

A `Driver` is process-wide (it owns threads, stores, worker processes); it opens one
`DriverSession` per device. A session is owned by exactly one supervisor, which calls it from the
event loop only; the session reports progress by calling the supervisor's `EventSink`.

The shape follows neonize/whatsmeow: `connect()` starts a long-lived connection and returns;
pairing arrives as a stream of QR codes (or a pairing code asked for after the first QR); the
library reconnects a linked session by itself after a drop; logout and bans end the session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sessions.events import EventSink


@dataclass(frozen=True)
class DeviceRef:
    """What a driver needs to open a device's session."""

    key: str  # stable per device (the session id); names its WhatsApp store
    jid: str | None  # the linked account, to resume without a scan; None to pair


@dataclass(frozen=True)
class MediaFile:
    """A media blob the gateway has stored, vetted and sniffed; drivers read it from `path`."""

    path: str
    mime: str
    size: int
    filename: str | None = None


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    name: str = ""
    address: str = ""


@dataclass(frozen=True)
class OutgoingMessage:
    kind: str  # text | image | video | audio | voice | document | location
    to: str  # E.164 digits without '+'
    text: str  # the text, or a media message's caption
    media: MediaFile | None = None
    location: Location | None = None
    link_preview: bool = False


class DriverSession(Protocol):
    async def connect(self) -> None:
        """Start connecting; raise `DriverNotReady` if that fails at once."""

    async def pair_phone(self, phone: str) -> str:
        """Ask for an 8-character pairing code; valid only while QR codes are being shown."""

    async def send(self, message: OutgoingMessage, message_id: str | None) -> str:
        """Send and return WhatsApp's message id (ours, when the driver can honour it)."""

    async def on_whatsapp(self, phones: list[str]) -> dict[str, bool]:
        """Which of these numbers (E.164 digits) have a WhatsApp account; needs a connection."""

    async def typing(self, to: str, active: bool) -> None:
        """Show (or stop showing) "typing…" in the chat with `to`; best effort."""

    async def logout(self) -> None:
        """Unlink from the phone's side and delete this device's credentials."""

    async def close(self) -> None:
        """Disconnect and release everything; idempotent; must not raise."""


class Driver(Protocol):
    name: str
    qr_window: float
    """Seconds a pairing attempt lasts after its first QR code (the supervisor's deadline)."""
    honours_message_ids: bool
    """Whether `send(..., message_id)` keeps our id, so a retried send cannot duplicate."""
    ordered_pipelining: bool
    """Whether concurrent sends reach WhatsApp in call order, so the dispatcher may pipeline a
    batch instead of sending one message at a time."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def open_session(self, device: DeviceRef, sink: EventSink) -> DriverSession: ...
    async def forget(self, key: str) -> None:
        """Delete a device's stored WhatsApp credentials."""
