"""neonize's protobuf events -> wagate's driver events.

Pure functions, so they can be fed real neonize objects in tests without a connection. Imported
only inside worker processes (and tests): importing neonize loads its 19 MB Go library and calls
`logging.basicConfig`, neither of which belongs in the daemon.

What the mapping decides, and why:
- A connect failure whose reason means the link is gone (LOGGED_OUT, MAIN_DEVICE_GONE,
  UNKNOWN_LOGOUT: whatsmeow's `IsLoggedOut`) is a `LoggedOut`: retrying cannot help, the device
  needs a new QR code. Every other refusal is a `ConnectFailed` the supervisor retries.
- Receipts other than delivered/read/played (sender, retry, inactive, history-sync, ...) are not
  delivery facts about our messages and are dropped.
- Messages we sent from the phone (`IsFromMe`), edits, reactions and protocol messages are not
  inbound messages.
- Senders can be LIDs (`@lid`); the phone number comes from `SenderAlt` when WhatsApp gives it.
"""

from __future__ import annotations

import re
import time
from typing import Any

from neonize.proto import Neonize_pb2 as pb
from neonize.utils.message import extract_text

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
    Receipt,
    Replaced,
)

USER_SERVER = "s.whatsapp.net"
FIRST_QR_SECONDS = 60.0  # whatsmeow shows the first code for 60 s ...
NEXT_QR_SECONDS = 20.0  # ... and each later one for 20 s

LOGGED_OUT_REASONS = frozenset({
    pb.ConnectFailureReason.LOGGED_OUT,
    pb.ConnectFailureReason.MAIN_DEVICE_GONE,
    pb.ConnectFailureReason.UNKNOWN_LOGOUT,
})

RECEIPTS = {
    pb.Receipt.DELIVERED: "delivered",
    pb.Receipt.READ: "read",
    pb.Receipt.PLAYED: "played",
}

BAN_REASONS = {
    pb.TemporaryBan.SEND_TO_TOO_MANY_PEOPLE: "sent to too many people",
    pb.TemporaryBan.BLOCKED_BY_USERS: "blocked by too many users",
    pb.TemporaryBan.CREATED_TOO_MANY_GROUPS: "created too many groups",
    pb.TemporaryBan.SENT_TOO_MANY_SAME_MESSAGE: "sent the same message too often",
    pb.TemporaryBan.BROADCAST_LIST: "broadcast list misuse",
}

# Wrappers whose inner `message` is the real content (whatsmeow usually unwraps them already).
WRAPPERS = ("ephemeralMessage", "viewOnceMessage", "viewOnceMessageV2",
            "viewOnceMessageV2Extension", "documentWithCaptionMessage")
# Content that is not a message a person wrote.
NOT_MESSAGES = ("protocolMessage", "reactionMessage", "encReactionMessage", "pollUpdateMessage",
                "keepInChatMessage", "pinInChatMessage", "editedMessage",
                "senderKeyDistributionMessage", "messageContextInfo")

MAX_REASON = 240


def jid_string(jid: Any) -> str:
    """whatsmeow's `JID.String()`: `user[.agent][:device]@server`."""
    if jid.RawAgent > 0:
        return f"{jid.User}.{jid.RawAgent}:{jid.Device}@{jid.Server}"
    if jid.Device > 0:
        return f"{jid.User}:{jid.Device}@{jid.Server}"
    if jid.User:
        return f"{jid.User}@{jid.Server}"
    return str(jid.Server)


def phone_of(jid: Any) -> str | None:
    """The phone number of a user JID, None for LIDs, groups and empty JIDs."""
    if jid.Server not in (USER_SERVER, "c.us") or not jid.User:
        return None
    user = str(jid.User).split(":", 1)[0].split(".", 1)[0]
    return user if user.isdigit() else None


def short_reason(message: str) -> str:
    """A failure reason short enough for a device's `last_error`, keeping the actual cause.

    neonize's dial error nests four layers ("failed to dial whatsapp web websocket: failed to
    WebSocket dial: failed to send handshake request: Get \"https://...\": dial tcp: lookup ...");
    the part after the URL is the one an operator can act on.
    """
    text = " ".join(str(message).split())
    if "failed to dial" in text or "WebSocket dial" in text:
        match = re.search(r'Get "[^"]*": (.+)$', text)
        cause = match.group(1) if match else text.rsplit("dial: ", 1)[-1]
        text = f"failed to dial WhatsApp: {cause}"
    if len(text) > MAX_REASON:
        text = text[: MAX_REASON - 1] + "\u2026"
    return text or "unknown error"


def qr_code(data: bytes | str, index: int) -> QRCode:
    """The `index`-th code (0-based) of a pairing attempt."""
    code = data.decode() if isinstance(data, bytes) else data
    return QRCode(code, FIRST_QR_SECONDS if index == 0 else NEXT_QR_SECONDS)


def to_driver_event(ev: Any, now: float | None = None) -> DriverEvent | None:
    """Our event for a neonize event, or None when it is not one we report."""
    now = time.time() if now is None else now
    if isinstance(ev, pb.PairStatus):
        return _pair_status(ev)
    if isinstance(ev, pb.Connected):
        return Connected()
    if isinstance(ev, pb.Disconnected):
        return Disconnected("connection to WhatsApp lost; reconnecting")
    if isinstance(ev, pb.LoggedOut):
        return _logged_out(ev)
    if isinstance(ev, pb.TemporaryBan):
        reason = BAN_REASONS.get(ev.Code, "temporarily banned")
        expires = float(ev.Expire) if ev.Expire > 0 else None
        return Banned(f"temporarily banned by WhatsApp ({reason})",
                      now + expires if expires is not None else None)
    if isinstance(ev, pb.StreamReplaced):
        return Replaced()
    if isinstance(ev, pb.ConnectFailure):
        return _connect_failure(ev)
    if isinstance(ev, pb.ClientOutdated):
        return ConnectFailed("WhatsApp rejected this client version as outdated; "
                             "upgrade neonize")
    if isinstance(ev, pb.Receipt):
        return _receipt(ev)
    if isinstance(ev, pb.Message):
        return _message(ev)
    return None


def _pair_status(ev: Any) -> DriverEvent:
    if ev.Status == pb.PairStatus.SUCCESS:
        return PairSuccess(phone_of(ev.ID) or str(ev.ID.User), jid_string(ev.ID))
    return ConnectFailed(short_reason(f"pairing failed: {ev.Error or 'unknown error'}"))


def _reason_name(ev: Any) -> str:
    # Unmapped whatsmeow codes arrive without the field set and read as GENERIC.
    if not ev.HasField("Reason"):
        return "unknown reason"
    return str(pb.ConnectFailureReason.Name(ev.Reason)).lower().replace("_", " ")


def _logged_out(ev: Any) -> LoggedOut:
    if ev.OnConnect:
        return LoggedOut(f"WhatsApp rejected the stored credentials ({_reason_name(ev)})")
    return LoggedOut("device was removed from the phone's linked devices")


def _connect_failure(ev: Any) -> DriverEvent:
    detail = f"{_reason_name(ev)}{': ' + ev.Message if ev.Message else ''}"
    if ev.HasField("Reason") and ev.Reason in LOGGED_OUT_REASONS:
        return LoggedOut(short_reason(f"WhatsApp rejected the stored credentials ({detail})"))
    return ConnectFailed(short_reason(f"WhatsApp refused the connection ({detail})"))


def _receipt(ev: Any) -> Receipt | None:
    status = RECEIPTS.get(ev.Type)
    if status is None or not ev.MessageIDs:
        return None
    chat = ev.MessageSource.Chat
    return Receipt(tuple(str(i) for i in ev.MessageIDs), status,
                   phone_of(chat) or jid_string(chat))


def _unwrap(message: Any) -> Any:
    for _ in range(3):
        for name in WRAPPERS:
            if message.HasField(name) and getattr(message, name).HasField("message"):
                message = getattr(message, name).message
                break
        else:
            return message
    return message


def _content(message: Any) -> tuple[str, str, dict[str, str]] | None:
    """(kind, text, extra) of a message's content; None when it is not a person's message."""
    if message.conversation:
        return "text", message.conversation, {}
    set_fields = {f.name for f, _ in message.ListFields()}
    if not set_fields or set_fields <= set(NOT_MESSAGES):
        return None
    text = extract_text(message)
    if "extendedTextMessage" in set_fields:
        return "text", text, {}
    if "imageMessage" in set_fields:
        return "image", text, _media(message.imageMessage)
    if "videoMessage" in set_fields or "ptvMessage" in set_fields:
        video = message.videoMessage if "videoMessage" in set_fields else message.ptvMessage
        return "video", text or video.caption, _media(video)
    if "audioMessage" in set_fields:
        audio = message.audioMessage
        return "audio", "", {**_media(audio), "ptt": "true" if audio.PTT else "false"}
    if "documentMessage" in set_fields:
        doc = message.documentMessage
        extra = _media(doc)
        if doc.fileName:
            extra["filename"] = doc.fileName
        return "document", text, extra
    if "locationMessage" in set_fields or "liveLocationMessage" in set_fields:
        if "locationMessage" not in set_fields:
            live = message.liveLocationMessage
            return "location", live.caption, {**_coordinates(live), "live": "true"}
        loc = message.locationMessage
        extra = _coordinates(loc)
        if loc.name:
            extra["name"] = loc.name
        if loc.address:
            extra["address"] = loc.address
        return "location", loc.comment or loc.name, extra
    if "stickerMessage" in set_fields:
        return "sticker", "", _media(message.stickerMessage)
    if "contactMessage" in set_fields:
        return "contact", message.contactMessage.displayName, {}
    if "contactsArrayMessage" in set_fields:
        return "contact", message.contactsArrayMessage.displayName, {}
    return "other", text, {}


def _coordinates(loc: Any) -> dict[str, str]:
    return {"latitude": repr(loc.degreesLatitude), "longitude": repr(loc.degreesLongitude)}


def _media(media: Any) -> dict[str, str]:
    return {"mimetype": media.mimetype} if media.mimetype else {}


def _timestamp(value: int) -> float:
    # neonize encodes MessageInfo.Timestamp in milliseconds, Receipt.Timestamp in seconds.
    return value / 1000.0 if value > 100_000_000_000 else float(value)


def _message(ev: Any) -> InboundMessage | None:
    info = ev.Info
    src = info.MessageSource
    if src.IsFromMe or ev.IsEdit:
        return None
    content = _content(_unwrap(ev.Message))
    if content is None:
        return None
    kind, text, extra = content
    sender = (phone_of(src.Sender) or (phone_of(src.SenderAlt) if src.HasField("SenderAlt")
                                       else None) or jid_string(src.Sender))
    chat = jid_string(src.Chat) if src.IsGroup else sender
    if info.Pushname:
        extra = {**extra, "push_name": info.Pushname}
    return InboundMessage(wa_id=info.ID, sender=sender, chat=chat, kind=kind, text=text or "",
                          is_group=bool(src.IsGroup), timestamp=_timestamp(info.Timestamp),
                          extra=extra)
