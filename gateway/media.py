"""Media for outgoing messages: what each kind accepts, MIME sniffing, and the blob store.

The client's Content-Type is never trusted: the bytes are sniffed with libmagic (python-magic),
and the sniffed type must be one WhatsApp accepts for the kind asked for (the limits are
WhatsApp's own, capped further by `delivery.max_media_bytes`). A message without a `type`
gets the kind its bytes say.

Blobs are content-addressed (SHA-256) files under `<data_dir>/media/`, written and fsynced
before the message that names them is committed, so a queued media message survives a crash
like a text one; a printer sending the same logo a thousand times stores it once. Files no
queued message needs are removed by `MediaStore.collect` (the manager runs it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import mimetypes
import os
import re
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import magic

from gateway.errors import PayloadTooLarge, Unprocessable

MB = 1024 * 1024


@dataclass(frozen=True)
class KindRule:
    mimes: tuple[str, ...]  # accepted sniffed types; empty: any
    limit: int  # WhatsApp's own size limit for the kind
    hint: str


# WhatsApp's accepted types and sizes per message kind (Cloud API media reference; the same
# limits apply to linked devices).
KINDS: dict[str, KindRule] = {
    "image": KindRule(("image/jpeg", "image/png"), 5 * MB, "JPEG or PNG"),
    "video": KindRule(("video/mp4", "video/3gpp"), 16 * MB, "MP4 or 3GPP"),
    "audio": KindRule(("audio/aac", "audio/mp4", "audio/mpeg", "audio/amr", "audio/ogg"),
                      16 * MB, "AAC, M4A, MP3, AMR or OGG"),
    "voice": KindRule(("audio/ogg",), 16 * MB, "OGG/Opus (a voice note)"),
    "document": KindRule((), 100 * MB, "any file"),
}
MEDIA_KINDS = tuple(KINDS)

# libmagic's names for types WhatsApp knows by another.
_ALIASES = {"audio/x-m4a": "audio/mp4", "audio/x-hx-aac-adts": "audio/aac",
            "audio/x-aac": "audio/aac", "audio/mp3": "audio/mpeg", "video/3gpp2": "video/3gpp",
            "audio/x-ogg": "audio/ogg", "application/ogg": "audio/ogg"}
_SNIFF_BYTES = 1 * MB  # libmagic reads what it needs; a zip-based document needs the most
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")


class MediaRefused(Unprocessable):
    code = "media_refused"


def sniff(data: bytes) -> str:
    """The type the bytes say they are (libmagic), in WhatsApp's naming."""
    mime = str(magic.from_buffer(data[:_SNIFF_BYTES], mime=True)).lower()
    return _ALIASES.get(mime, mime)


def kind_for(mime: str) -> str:
    """The message kind for bytes of this type, when the client did not say."""
    for kind in ("image", "video", "audio"):
        if mime in KINDS[kind].mimes:
            return kind
    return "document"


def check_media(kind: str, mime: str, size: int, max_bytes: int) -> None:
    """Refuse bytes WhatsApp would refuse for `kind`, with a message that says what to send."""
    rule = KINDS[kind]
    limit = min(rule.limit, max_bytes)
    if size > limit:
        raise PayloadTooLarge(f"{kind}: {size} bytes is over the {limit}-byte limit",
                              code="media_too_large", limit=limit)
    if size == 0:
        raise MediaRefused(f"{kind}: the file is empty", code="media_empty")
    if rule.mimes and mime not in rule.mimes:
        suggestion = "; send it as a document" if kind != "document" else ""
        raise MediaRefused(f"{kind}: the file is {mime}, not {rule.hint}{suggestion}",
                           code="media_type_mismatch", detected=mime)


def clean_filename(name: str | None, mime: str) -> str:
    """A file name safe to show on the phone: no path, no control characters, an extension."""
    base = _UNSAFE_NAME.sub("_", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).strip(". ")
    base = base[:128]
    if not base:
        base = "file" + (mimetypes.guess_extension(mime) or "")
    return base


class MediaStore:
    """Content-addressed blobs on the local disk (`<data_dir>/media/ab/abcdef…`).

    Several nodes (the PostgreSQL deployment) need this directory on shared storage, or another
    implementation of `put` / `path` / `collect` over object storage.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    async def put(self, data: bytes) -> str:
        """Write (or touch) the blob and return its SHA-256; on disk and fsynced by then."""
        digest = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write, digest, data)
        return digest

    def _write(self, digest: str, data: bytes) -> None:
        target = self.path(digest)
        if target.exists():
            os.utime(target)  # fresh mtime: `collect` keeps it through its grace period
            return
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself is durable
        finally:
            os.close(dir_fd)

    def stale(self, older_than: float) -> list[Path]:
        """Blobs (and temporary files a crash left) not touched for `older_than` seconds."""
        cutoff = time.time() - older_than
        found: list[Path] = []
        with contextlib.suppress(FileNotFoundError):
            for shard in os.scandir(self.root):
                if not shard.is_dir():
                    continue
                for entry in os.scandir(shard.path):
                    with contextlib.suppress(FileNotFoundError):
                        if entry.stat().st_mtime < cutoff:
                            found.append(Path(entry.path))
        return found

    @staticmethod
    def remove(paths: Iterable[Path]) -> int:
        removed = 0
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        return removed
