"""Standard Webhooks signatures: `v1,` + base64 HMAC-SHA256 over `id.timestamp.body`.

Secrets are `whsec_` + base64 of 32 bytes (the spec's format, so the receivers' off-the-shelf
libraries verify them). They are derived from the server secret and a nonce in the database,
like send URLs, so a copy of the database alone cannot forge a webhook.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from gateway.tokens import TokenVault

PREFIX = "whsec_"


def endpoint_secret(vault: TokenVault, nonce: str) -> str:
    raw = hmac.new(vault.secret_for("whsec"), nonce.encode(), hashlib.sha256).digest()
    return PREFIX + base64.b64encode(raw).decode()


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    mac = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signature_header(secrets: list[str], event_id: str, timestamp: int, body: bytes) -> str:
    """Space-separated signatures: during a rotation both the new and the old secret sign."""
    return " ".join(sign(s, event_id, timestamp, body) for s in secrets)
