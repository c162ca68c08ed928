"""wagate's outgoing messages -> neonize `Message` protobufs (inside a worker process).

Text and location are built here, offline, so tests check them with real protobufs. Media go
through neonize's own `build_*_message`, which uploads the bytes to WhatsApp's media servers
(and runs ffmpeg/ffprobe for audio and video), so they need a connected client. Media bytes are
read from the gateway's blob store and passed as `bytes`: given a `str`, neonize would treat it
as a path or fetch a URL itself, with no timeout.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import LocationMessage, Message

MEDIA_KINDS = ("image", "video", "audio", "voice", "document")


def text_message(text: str) -> Any:
    return Message(conversation=text)


def location_message(location: dict[str, Any], caption: str = "") -> Any:
    place = LocationMessage(degreesLatitude=float(location["latitude"]),
                            degreesLongitude=float(location["longitude"]))
    if location.get("name"):
        place.name = str(location["name"])
    if location.get("address"):
        place.address = str(location["address"])
    if caption:
        place.comment = caption
    return Message(locationMessage=place)


async def media_message(client: Any, kind: str, text: str, media: dict[str, Any]) -> Any:
    """Upload the blob and return the message that refers to it."""
    data = await asyncio.to_thread(Path(str(media["path"])).read_bytes)
    if len(data) != int(media["size"]):
        raise OSError("the media file changed size")
    caption = text or None
    if kind == "image":
        return await client.build_image_message(data, caption=caption)
    if kind == "video":
        return await client.build_video_message(data, caption=caption)
    if kind in ("audio", "voice"):
        return await client.build_audio_message(data, ptt=kind == "voice")
    name = media.get("filename") or "file"
    return await client.build_document_message(data, caption=caption, title=name, filename=name,
                                               mimetype=str(media["mime"]))
