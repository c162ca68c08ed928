"""API key scopes: what a partner key may do. Each route names the scope it needs next to its
handler (`require_partner(request, "devices:write")`) and in its OpenAPI operation
(`x-required-scope`); a test checks the two agree."""

from __future__ import annotations

from typing import Any

from gateway.errors import BadRequest

SCOPES: dict[str, str] = {
    "users:read": "list end users and their devices",
    "users:write": "create end users",
    "devices:read": "device status, QR codes",
    "devices:write": "create, pair, restart, log out, rotate, delete devices; link pages",
    "messages:send": "see send URLs and device tokens (the send URL is the credential that sends)",
    "messages:read": "message status, history and inbound messages",
    "webhooks:manage": "webhook endpoints, their secrets and delivery logs",
    "wallet:read": "the wallet balance (with the wallet)",
    "plugins:use": "plugin routes (with the plugins)",
    "keys:manage": "list, create and revoke API keys (only with scopes the key itself holds)",
    "audit:read": "the partner's audit log",
}
ALL = ("*",)  # every scope, including scopes added later (the key from registration)


def has_scope(held: tuple[str, ...], scope: str) -> bool:
    return held == ALL or scope in held


def expand(held: tuple[str, ...]) -> list[str]:
    return list(SCOPES) if held == ALL else [s for s in SCOPES if s in held]


def parse_scopes(value: Any) -> tuple[str, ...]:
    """A request's `scopes`: omitted or ["*"] for every scope, else known scope names."""
    if value is None:
        return ALL
    if not isinstance(value, list) or not value or not all(isinstance(s, str) for s in value):
        raise BadRequest('scopes: a non-empty list of scope names, or ["*"]',
                         code="invalid_field", field="scopes")
    if "*" in value:
        return ALL
    unknown = [s for s in value if s not in SCOPES]
    if unknown:
        raise BadRequest(f"scopes: unknown {', '.join(unknown[:5])}; known: "
                         f"{', '.join(SCOPES)}", code="invalid_field", field="scopes")
    chosen = set(value)
    if chosen == set(SCOPES):
        return ALL
    return tuple(s for s in SCOPES if s in chosen)
