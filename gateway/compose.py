"""What a send request asks for, checked and made durable: text, media, location.

Both send routes (the send URL and the partner API) read the same fields, from a query string,
a form, a multipart upload or JSON:

    to            recipient, any common phone format (normalised to E.164)
    type          text | image | video | audio | voice | document | location
                  (optional: text, or the kind the media's bytes say)
    message       the text, or the media's caption (alias: caption)
    media_url     media fetched by the gateway (http/https), or a multipart part named `file`
    filename      the document's name on the phone (default: the upload's or the URL's)
    latitude, longitude, name, address   a location
    link_preview  1/true: WhatsApp shows a preview of the first link in the text

The media is fetched or read, sniffed (`gateway/media.py`), checked against the kind and
stored before the message is committed; what the dispatcher needs later rides in the
message's `payload` JSON.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from starlette.datastructures import UploadFile

from gateway.config import DeliveryConfig
from gateway.errors import BadRequest, PayloadTooLarge
from gateway.media import KINDS, MediaStore, check_media, clean_filename, kind_for, sniff
from gateway.media_fetch import fetch_media
from sessions.drivers.base import Location, MediaFile, OutgoingMessage

TEXT_KINDS = ("text", "location")
ALL_KINDS = ("text", *KINDS, "location")
MAX_TEXT = 4096 * 4  # WhatsApp's own text limit is 65,536; keep LAN payloads sane
MAX_PLACE = 256


@dataclass(frozen=True)
class Draft:
    """A send request, checked; its media already on disk."""

    kind: str
    text: str
    payload: dict[str, Any] | None
    media_sha256: str | None = None

    def payload_json(self) -> str | None:
        return orjson.dumps(self.payload).decode() if self.payload else None

    def fingerprint(self, to: str) -> str:
        """Same recipient and content: the same request (for Idempotency-Key)."""
        if self.payload is None and self.kind == "text":
            raw = f"text\0{to}\0{self.text}".encode()  # unchanged from text-only days
        else:
            raw = orjson.dumps([self.kind, to, self.text, self.payload],
                               option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(raw).hexdigest()


def flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes", "on")


def _str(params: dict[str, Any], *names: str, max_len: int) -> str:
    for name in names:
        value = params.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise BadRequest(f"{name}: must be a string", code="invalid_field", field=name)
        text = str(value).strip()
        if len(text) > max_len:
            raise BadRequest(f"{name}: longer than {max_len} characters", code="invalid_field",
                             field=name)
        if text:
            return text
    return ""


def _coordinate(params: dict[str, Any], name: str, alias: str, bound: float) -> float:
    raw = params.get(name, params.get(alias))
    if raw is None or raw == "":
        raise BadRequest(f"{name}: required for a location", code="missing_field", field=name)
    try:
        value = float(raw) if not isinstance(raw, bool) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not -bound <= value <= bound:  # NaN fails too
        raise BadRequest(f"{name}: a number from {-bound:g} to {bound:g}", code="invalid_field",
                         field=name)
    return value


@dataclass(frozen=True)
class Ask:
    """The fields of a send request, checked for shape (cheap; nothing fetched yet)."""

    kind: str  # "" when the media's bytes are to decide
    text: str
    media_url: str = ""
    upload: UploadFile | None = None
    filename: str = ""
    location: dict[str, Any] | None = None
    link_preview: bool = False


def read_fields(params: dict[str, Any], upload: UploadFile | None) -> Ask:
    kind = _str(params, "type", "kind", max_len=16).lower()
    if kind and kind not in ALL_KINDS:
        raise BadRequest(f"type: one of {', '.join(ALL_KINDS)}", code="invalid_field",
                         field="type")
    text = _str(params, "message", "caption", max_len=MAX_TEXT)
    media_url = _str(params, "media_url", max_len=2048)
    has_media = upload is not None or bool(media_url)
    if kind in TEXT_KINDS and has_media:
        raise BadRequest(f"type {kind} carries no media; leave out media_url and file",
                         code="invalid_field", field="type")
    if kind == "location":
        return Ask("location", text, location={
            "latitude": _coordinate(params, "latitude", "lat", 90),
            "longitude": _coordinate(params, "longitude", "lng", 180),
            "name": _str(params, "name", max_len=MAX_PLACE),
            "address": _str(params, "address", max_len=MAX_PLACE)})
    if not has_media:
        if kind and kind != "text":
            raise BadRequest(f"type {kind}: give media_url or upload a file part",
                             code="missing_field", field="media_url")
        if not text:
            raise BadRequest("message: required", code="missing_field", field="message")
        return Ask("text", text, link_preview=flag(params.get("link_preview")))
    if upload is not None and media_url:
        raise BadRequest("give media_url or a file part, not both", code="invalid_field",
                         field="media_url")
    if media_url and not media_url.lower().startswith(("http://", "https://")):
        raise BadRequest("media_url: must be an http:// or https:// URL", code="invalid_field",
                         field="media_url")
    return Ask(kind, text, media_url, upload, _str(params, "filename", max_len=255))


async def compose(ask: Ask, *, settings: DeliveryConfig, media: MediaStore,
                  http: httpx.AsyncClient) -> Draft:
    """Fetch or read the media, sniff and check it, and store it: the message to commit."""
    if ask.location is not None:
        return Draft("location", ask.text, {"location": ask.location})
    if ask.kind == "text":
        return Draft("text", ask.text, {"link_preview": True} if ask.link_preview else None)
    data, name = await _media_bytes(ask.upload, ask.media_url, settings, http)
    mime = await asyncio.to_thread(sniff, data)
    kind = ask.kind or kind_for(mime)
    check_media(kind, mime, len(data), settings.max_media_bytes)
    digest = await media.put(data)
    info: dict[str, Any] = {"sha256": digest, "mime": mime, "size": len(data)}
    if kind == "document":
        info["filename"] = clean_filename(ask.filename or name, mime)
    return Draft(kind, ask.text, {"media": info}, digest)


async def _media_bytes(upload: UploadFile | None, media_url: str, settings: DeliveryConfig,
                       http: httpx.AsyncClient) -> tuple[bytes, str | None]:
    limit = settings.max_media_bytes
    if upload is not None:
        data = await upload.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"file: over the {limit}-byte limit", code="media_too_large",
                                  limit=limit)
        return data, upload.filename
    fetched = await fetch_media(http, media_url, limit=limit,
                                deadline=settings.media_fetch_timeout,
                                allow_private=settings.media_allow_private)
    return fetched.data, fetched.filename


def outgoing(kind: str, to: str, text: str, payload: str | None,
             media: MediaStore) -> OutgoingMessage:
    """The driver's view of a stored message."""
    if payload is None:
        return OutgoingMessage(kind, to, text)
    data: dict[str, Any] = orjson.loads(payload)
    file = None
    if (info := data.get("media")) is not None:
        file = MediaFile(str(media.path(info["sha256"])), info["mime"], int(info["size"]),
                         info.get("filename"))
    place = None
    if (loc := data.get("location")) is not None:
        place = Location(float(loc["latitude"]), float(loc["longitude"]), loc.get("name") or "",
                         loc.get("address") or "")
    return OutgoingMessage(kind, to, text, file, place, bool(data.get("link_preview")))


def payload_view(payload: str | None) -> dict[str, Any]:
    """What the message APIs show of a payload (never the blob's location)."""
    if payload is None:
        return {}
    data: dict[str, Any] = orjson.loads(payload)
    view: dict[str, Any] = {}
    if (info := data.get("media")) is not None:
        view["media"] = {k: info[k] for k in ("mime", "size", "filename", "sha256") if k in info}
    if "location" in data:
        view["location"] = data["location"]
    if data.get("link_preview"):
        view["link_preview"] = True
    return view
