"""Credentials: random prefixed tokens, their lookup hashes, and the server secret.

A token is `<prefix>_<base62 body><6-char base62 CRC-32>`. The checksum lets wagate (and secret
scanners) reject a mistyped or made-up token without touching the database. The database keeps only
SHA-256 hashes, which is enough for 192-bit random tokens (no slow hash needed). Tokens that must be
shown again later (user tokens and send URLs in listings) are *derived*: HMAC(server secret, nonce),
with the random nonce in the database and the secret in a file beside it, so a copy of the database
alone yields no usable credential.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import zlib
from pathlib import Path

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BODY_BYTES = 24  # 192 bits
CHECKSUM_LEN = 6
# Token type prefixes (not secrets).
PARTNER_KEY = "pk"
USER_TOKEN = "pu"  # noqa: S105
DEVICE_TOKEN = "dt"  # noqa: S105
TOKEN_PREFIXES = (PARTNER_KEY, USER_TOKEN, DEVICE_TOKEN, "whsec", "lt", "op")
SECRET_FILE = "server.secret"  # noqa: S105 - a file name


def _base62(data: bytes, width: int) -> str:
    n = int.from_bytes(data, "big")
    out = []
    for _ in range(width):
        n, rem = divmod(n, 62)
        out.append(ALPHABET[rem])
    return "".join(reversed(out))


_BODY_LEN = 33  # ceil(192 / log2(62))


def _checksum(text: str) -> str:
    return _base62(zlib.crc32(text.encode()).to_bytes(4, "big"), CHECKSUM_LEN)


def _assemble(prefix: str, raw: bytes) -> str:
    head = f"{prefix}_{_base62(raw, _BODY_LEN)}"
    return head + _checksum(head)


def new_token(prefix: str) -> str:
    """A fresh random token, shown once (partner API keys, operator tokens)."""
    return _assemble(prefix, secrets.token_bytes(BODY_BYTES))


def well_formed(token: str, prefix: str) -> bool:
    """Shape and checksum check, before any lookup."""
    expected_len = len(prefix) + 1 + _BODY_LEN + CHECKSUM_LEN
    if not token.startswith(prefix + "_") or len(token) != expected_len:
        return False
    head, check = token[:-CHECKSUM_LEN], token[-CHECKSUM_LEN:]
    return hmac.compare_digest(_checksum(head), check)


def token_hash(token: str) -> str:
    """The value stored and indexed for lookup."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_nonce() -> str:
    return secrets.token_hex(16)


def new_session_id() -> str:
    """A device's public id (not a credential: every use needs the partner key)."""
    return "wa_" + secrets.token_hex(8)


class TokenVault:
    """Holds the server secret and derives showable tokens from nonces."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("server secret must be at least 32 bytes")
        self._secret = secret

    @classmethod
    def load_or_create(cls, data_dir: Path) -> TokenVault:
        path = data_dir / SECRET_FILE
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
        return cls(bytes.fromhex(path.read_text().strip()))

    def secret_for(self, purpose: str) -> bytes:
        """A key for one purpose (e.g. webhook signing), independent of every other use."""
        return hmac.new(self._secret, f"key:{purpose}".encode(), hashlib.sha256).digest()

    def fingerprint(self) -> str:
        """Names this secret without revealing it, so a database can tell its own secret."""
        return hmac.new(self._secret, b"wagate fingerprint", hashlib.sha256).hexdigest()[:16]

    def derive(self, prefix: str, nonce: str) -> str:
        raw = hmac.new(self._secret, f"{prefix}:{nonce}".encode(), hashlib.sha256).digest()
        return _assemble(prefix, raw[:BODY_BYTES])


def redact(token: str) -> str:
    """How a token appears in logs and listings that must not reveal it."""
    prefix, _, rest = token.partition("_")
    return f"{prefix}_…{rest[-4:]}" if rest else "…"
