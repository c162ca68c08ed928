"""neonize's own protobuf event objects, built here, through convert.py and over the wire format."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest

from sessions.drivers.neonize import protocol
from sessions.events import (
    Banned,
    Connected,
    ConnectFailed,
    Disconnected,
    InboundMessage,
    LoggedOut,
    PairSuccess,
    QRCode,
    QRTimeout,
    Receipt,
    Replaced,
)

DIAL_ERROR = (
    'failed to dial whatsapp web websocket: failed to WebSocket dial: failed to send handshake '
    'request: Get "https://web.whatsapp.com/ws/chat": dial tcp: lookup web.whatsapp.com on '
    '10.0.0.53:53: no such host')


@pytest.fixture(scope="module")
def neo() -> SimpleNamespace:
    """convert.py and neonize's protobuf modules, imported without neonize's logging setup.

    Importing neonize calls `logging.basicConfig`; undo that so other tests see the root logger
    as they left it.
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    logging.getLogger("neonize.utils.log").setLevel(logging.WARNING)
    from neonize.proto import Neonize_pb2 as pb
    from neonize.proto.waE2E import WAWebProtobufsE2E_pb2 as e2e

    from sessions.drivers.neonize import convert

    root.setLevel(level)
    root.handlers[:] = handlers
    return SimpleNamespace(pb=pb, e2e=e2e, convert=convert)


def jid(neo: SimpleNamespace, user: str, server: str = "s.whatsapp.net", device: int = 0) -> Any:
    return neo.pb.JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0,
                      IsEmpty=False)


def test_pair_success_gives_phone_and_device_jid(neo: SimpleNamespace) -> None:
    ev = neo.pb.PairStatus(ID=jid(neo, "919876543210", device=12), BusinessName="",
                           Platform="android", Status=neo.pb.PairStatus.SUCCESS)
    assert neo.convert.to_driver_event(ev) == PairSuccess("919876543210",
                                                          "919876543210:12@s.whatsapp.net")


def test_pair_error_is_a_failed_attempt(neo: SimpleNamespace) -> None:
    ev = neo.pb.PairStatus(Status=neo.pb.PairStatus.ERROR, Error="key mismatch")
    out = neo.convert.to_driver_event(ev)
    assert isinstance(out, ConnectFailed)
    assert "key mismatch" in out.reason


def test_connection_lifecycle_events(neo: SimpleNamespace) -> None:
    pb, convert = neo.pb, neo.convert
    assert convert.to_driver_event(pb.Connected(status=True)) == Connected()
    assert isinstance(convert.to_driver_event(pb.Disconnected(status=True)), Disconnected)
    assert convert.to_driver_event(pb.StreamReplaced()) == Replaced()
    outdated = convert.to_driver_event(pb.ClientOutdated())
    assert isinstance(outdated, ConnectFailed)
    assert "outdated" in outdated.reason
    assert convert.to_driver_event(pb.KeepAliveTimeout(ErrorCount=1, LastSuccess=1)) is None


def test_logged_out_from_phone_and_on_connect(neo: SimpleNamespace) -> None:
    pb, convert = neo.pb, neo.convert
    removed = convert.to_driver_event(pb.LoggedOut(OnConnect=False))
    assert isinstance(removed, LoggedOut)
    assert "removed" in removed.reason
    rejected = convert.to_driver_event(
        pb.LoggedOut(OnConnect=True, Reason=pb.ConnectFailureReason.MAIN_DEVICE_GONE))
    assert isinstance(rejected, LoggedOut)
    assert "main device gone" in rejected.reason


def test_temporary_ban_expiry_is_now_plus_expire(neo: SimpleNamespace) -> None:
    ev = neo.pb.TemporaryBan(Code=neo.pb.TemporaryBan.SEND_TO_TOO_MANY_PEOPLE, Expire=3600)
    out = neo.convert.to_driver_event(ev, now=1_000_000.0)
    assert isinstance(out, Banned)
    assert out.expires_at == 1_003_600.0
    assert "too many people" in out.reason
    unknown = neo.convert.to_driver_event(neo.pb.TemporaryBan(), now=5.0)
    assert isinstance(unknown, Banned)
    assert unknown.expires_at is None


@pytest.mark.parametrize(("reason", "expected"), [
    ("LOGGED_OUT", LoggedOut), ("MAIN_DEVICE_GONE", LoggedOut), ("UNKNOWN_LOGOUT", LoggedOut),
    ("SERVICE_UNAVAILABLE", ConnectFailed), ("GENERIC", ConnectFailed),
    ("BAD_USER_AGENT", ConnectFailed)])
def test_connect_failure_reasons(neo: SimpleNamespace, reason: str,
                                 expected: type[Any]) -> None:
    value = neo.pb.ConnectFailureReason.Value(reason)
    out = neo.convert.to_driver_event(neo.pb.ConnectFailure(Reason=value, Message="nope"))
    assert isinstance(out, expected)
    assert reason.lower().replace("_", " ") in out.reason


def test_connect_failure_without_reason_is_retried(neo: SimpleNamespace) -> None:
    out = neo.convert.to_driver_event(neo.pb.ConnectFailure(Message="code 499"))
    assert isinstance(out, ConnectFailed)
    assert "unknown reason" in out.reason


@pytest.mark.parametrize(("receipt_type", "status"), [
    ("DELIVERED", "delivered"), ("READ", "read"), ("PLAYED", "played"),
    ("SENDER", None), ("RETRY", None), ("READ_SELF", None), ("SERVER_ERROR", None)])
def test_receipts(neo: SimpleNamespace, receipt_type: str, status: str | None) -> None:
    pb = neo.pb
    source = pb.MessageSource(Chat=jid(neo, "919876543210"), Sender=jid(neo, "919876543210"),
                              IsFromMe=False, IsGroup=False)
    ev = pb.Receipt(MessageSource=source, MessageIDs=["3EB0A1", "3EB0A2"], Timestamp=1700000000,
                    Type=pb.Receipt.ReceiptType.Value(receipt_type))
    out = neo.convert.to_driver_event(ev)
    if status is None:
        assert out is None
    else:
        assert out == Receipt(("3EB0A1", "3EB0A2"), status, "919876543210")


def message_event(neo: SimpleNamespace, message: Any, *, sender: Any = None, chat: Any = None,
                  is_group: bool = False, from_me: bool = False, sender_alt: Any = None,
                  **info: Any) -> Any:
    pb = neo.pb
    sender = sender if sender is not None else jid(neo, "447700900123")
    source = pb.MessageSource(Chat=chat if chat is not None else sender, Sender=sender,
                              IsFromMe=from_me, IsGroup=is_group)
    if sender_alt is not None:
        source.SenderAlt.CopyFrom(sender_alt)
    return pb.Message(Info=pb.MessageInfo(MessageSource=source, ID=info.get("id", "ABCDEF01"),
                                          Pushname=info.get("push", "Alice"),
                                          Timestamp=info.get("ts", 1_700_000_000_123)),
                      Message=message)


def test_text_message(neo: SimpleNamespace) -> None:
    ev = message_event(neo, neo.e2e.Message(conversation="hello there"))
    out = neo.convert.to_driver_event(ev)
    assert out == InboundMessage(wa_id="ABCDEF01", sender="447700900123", chat="447700900123",
                                 kind="text", text="hello there", is_group=False,
                                 timestamp=1_700_000_000.123, extra={"push_name": "Alice"})


def test_extended_text_in_a_group(neo: SimpleNamespace) -> None:
    e2e = neo.e2e
    group = jid(neo, "120363025246125888", server="g.us")
    ev = message_event(neo, e2e.Message(extendedTextMessage=e2e.ExtendedTextMessage(
        text="see https://example.com")), chat=group, is_group=True)
    out = neo.convert.to_driver_event(ev)
    assert isinstance(out, InboundMessage)
    assert (out.kind, out.text, out.is_group) == ("text", "see https://example.com", True)
    assert out.chat == "120363025246125888@g.us"
    assert out.sender == "447700900123"


def test_lid_sender_uses_the_phone_alternative(neo: SimpleNamespace) -> None:
    ev = message_event(neo, neo.e2e.Message(conversation="hi"),
                       sender=jid(neo, "123456789012345", server="lid"),
                       sender_alt=jid(neo, "447700900123"))
    out = neo.convert.to_driver_event(ev)
    assert isinstance(out, InboundMessage)
    assert out.sender == "447700900123"
    bare = neo.convert.to_driver_event(message_event(
        neo, neo.e2e.Message(conversation="hi"), sender=jid(neo, "123456789012345", "lid")))
    assert isinstance(bare, InboundMessage)
    assert bare.sender == "123456789012345@lid"


def test_media_with_caption_and_location(neo: SimpleNamespace) -> None:
    e2e, convert = neo.e2e, neo.convert
    image = convert.to_driver_event(message_event(neo, e2e.Message(
        imageMessage=e2e.ImageMessage(caption="look", mimetype="image/jpeg"))))
    assert isinstance(image, InboundMessage)
    assert (image.kind, image.text, image.extra["mimetype"]) == ("image", "look", "image/jpeg")
    doc = convert.to_driver_event(message_event(neo, e2e.Message(
        documentMessage=e2e.DocumentMessage(caption="invoice", fileName="inv.pdf",
                                            mimetype="application/pdf"))))
    assert isinstance(doc, InboundMessage)
    assert (doc.kind, doc.text, doc.extra["filename"]) == ("document", "invoice", "inv.pdf")
    voice = convert.to_driver_event(message_event(neo, e2e.Message(
        audioMessage=e2e.AudioMessage(PTT=True, mimetype="audio/ogg"))))
    assert isinstance(voice, InboundMessage)
    assert (voice.kind, voice.extra["ptt"]) == ("audio", "true")
    loc = convert.to_driver_event(message_event(neo, e2e.Message(
        locationMessage=e2e.LocationMessage(degreesLatitude=52.52, degreesLongitude=13.405,
                                            name="Berlin"))))
    assert isinstance(loc, InboundMessage)
    assert loc.kind == "location"
    assert (loc.extra["latitude"], loc.extra["longitude"], loc.text) == ("52.52", "13.405",
                                                                         "Berlin")


def test_not_inbound_messages(neo: SimpleNamespace) -> None:
    e2e, convert = neo.e2e, neo.convert
    assert convert.to_driver_event(
        message_event(neo, e2e.Message(conversation="sent from my phone"), from_me=True)) is None
    assert convert.to_driver_event(message_event(neo, e2e.Message(
        protocolMessage=e2e.ProtocolMessage(type=e2e.ProtocolMessage.REVOKE)))) is None
    assert convert.to_driver_event(message_event(neo, e2e.Message())) is None


def test_wrapped_messages_are_unwrapped(neo: SimpleNamespace) -> None:
    e2e = neo.e2e
    inner = e2e.Message(imageMessage=e2e.ImageMessage(caption="once"))
    ev = message_event(neo, e2e.Message(viewOnceMessage=e2e.FutureProofMessage(message=inner)))
    out = neo.convert.to_driver_event(ev)
    assert isinstance(out, InboundMessage)
    assert (out.kind, out.text) == ("image", "once")


def test_dial_error_is_shortened_to_its_cause(neo: SimpleNamespace) -> None:
    reason = neo.convert.short_reason(DIAL_ERROR)
    assert reason == ("failed to dial WhatsApp: dial tcp: lookup web.whatsapp.com on "
                      "10.0.0.53:53: no such host")
    assert len(neo.convert.short_reason("x" * 1000)) <= neo.convert.MAX_REASON


def test_qr_codes_rotate_on_whatsmeows_schedule(neo: SimpleNamespace) -> None:
    assert neo.convert.qr_code(b"2@abc,def", 0) == QRCode("2@abc,def", 60.0)
    assert neo.convert.qr_code(b"2@ghi,def", 1) == QRCode("2@ghi,def", 20.0)


@pytest.mark.parametrize("event", [
    QRCode("2@x", 60.0), QRTimeout(), PairSuccess("91", "91:1@s.whatsapp.net"), Connected(),
    Disconnected("lost"), ConnectFailed("dial"), LoggedOut("gone"), Banned("ban", 12.5),
    Banned("ban", None), Replaced(), Receipt(("a", "b"), "read", "91"),
    InboundMessage("id", "91", "91", "location", "", False, 1.5, {"latitude": "1.0"})])
def test_events_survive_the_wire(event: Any) -> None:
    frame = protocol.encode({"op": "event", "sid": 1, "event": protocol.event_to_wire(event)})
    body = protocol.json.loads(frame[protocol.HEADER.size:])
    assert protocol.event_from_wire(body["event"]) == event


def test_outgoing_text_and_location_are_real_protobufs(neo: SimpleNamespace) -> None:
    from sessions.drivers.neonize import outgoing

    text = outgoing.text_message("hello")
    assert isinstance(text, neo.e2e.Message)
    assert text.conversation == "hello"
    place = outgoing.location_message({"latitude": 12.9716, "longitude": 77.5946,
                                       "name": "Office", "address": ""}, "see you")
    wire = neo.e2e.Message.FromString(place.SerializeToString())
    loc = wire.locationMessage
    assert (loc.degreesLatitude, loc.degreesLongitude) == (12.9716, 77.5946)
    assert (loc.name, loc.HasField("address"), loc.comment) == ("Office", False, "see you")
