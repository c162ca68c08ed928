"""What a driver reports about one device's WhatsApp connection.

Drivers translate their library's events (neonize protobufs, the simulator's state changes) into
these plain records and hand them to the device's supervisor through an `EventSink`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class QRCode:
    """A new code of the rotating QR stream; `expires_in` seconds until the next one."""

    code: str
    expires_in: float


@dataclass(frozen=True)
class QRTimeout:
    """The QR stream ended without a scan (whatsmeow: after 6 codes, ~160 s)."""


@dataclass(frozen=True)
class PairSuccess:
    """The phone linked this device; `jid` is `<phone>:<device>@s.whatsapp.net`."""

    phone: str
    jid: str


@dataclass(frozen=True)
class Connected:
    """The session is connected and can send (on every reconnect too)."""


@dataclass(frozen=True)
class Disconnected:
    """An unexpected drop; the driver reconnects by itself."""

    reason: str


@dataclass(frozen=True)
class ConnectFailed:
    """The connection attempt ended; the supervisor backs off and starts a new one."""

    reason: str


@dataclass(frozen=True)
class LoggedOut:
    """The link was removed (from the phone, or the credentials were rejected)."""

    reason: str


@dataclass(frozen=True)
class Banned:
    """A temporary ban; `expires_at` is a unix time, None if unknown."""

    reason: str
    expires_at: float | None


@dataclass(frozen=True)
class Replaced:
    """Another client opened this session; this one must stop (never run one session twice)."""


@dataclass(frozen=True)
class Receipt:
    """WhatsApp message ids reached `status` (delivered, read or played)."""

    wa_ids: tuple[str, ...]
    status: str
    chat: str = ""


@dataclass(frozen=True)
class InboundMessage:
    wa_id: str
    sender: str
    chat: str
    kind: str
    text: str
    is_group: bool = False
    timestamp: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)


DriverEvent = (
    QRCode | QRTimeout | PairSuccess | Connected | Disconnected | ConnectFailed | LoggedOut
    | Banned | Replaced | Receipt | InboundMessage
)

EventSink = Callable[[DriverEvent], None]
"""Called on the event-loop thread; must not block."""
