"""Who is calling: the partner behind `x-api-key`, the end user behind `x-user-token`.

Lookups go by the SHA-256 of a well-formed token, so an unknown or another partner's credential
cannot be told apart from a made-up one; resources of other partners answer 404, never 403.

`require_partner(request, scope)` is the gate of every partner route, in this order: the
address is not blocked for failed lookups (429), the key is known (401, and a failed lookup is
counted), not expired (401), within its rate limit (429), its partner is active (403
`partner_pending` / `partner_suspended`), and it holds the route's scope (403
`insufficient_permissions`, naming the scope). Send URLs pass the same guard, limit and partner
check in `device_by_send_token`.

Send-URL tokens are looked up on every send, so a hit is remembered for `SEND_TOKEN_TTL` seconds
(never a miss: a new token works at once). Deleting a device or rotating its token clears the
cache of this process (`forget_send_tokens`), so a deleted send URL answers 404 at once; another
process sharing the database (the CLI) is seen within the TTL.
"""

from __future__ import annotations

import time

from starlette.requests import Request

from gateway.errors import Forbidden, NotFound, Unauthorized
from gateway.security.guard import (
    charge,
    check_blocked,
    lookup_failed,
    partner_allowed,
)
from gateway.security.scopes import SCOPES, has_scope
from gateway.services import Services
from gateway.store import Device, Partner, User
from gateway.store.base import ApiKey
from gateway.tokens import DEVICE_TOKEN, PARTNER_KEY, USER_TOKEN, token_hash, well_formed

SEND_TOKEN_TTL = 5.0
SEND_TOKEN_CACHE_MAX = 10_000


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def require_partner(request: Request, scope: str | None = None) -> Partner:
    """The partner behind `x-api-key`, if its key may do `scope` (None: any valid key)."""
    assert scope is None or scope in SCOPES, scope
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        raise Unauthorized("x-api-key header required", code="missing_api_key")
    now = time.time()
    check_blocked(request, now)
    svc = services(request)
    found = None
    if well_formed(key, PARTNER_KEY):
        found = await svc.store.api_key_by_hash(token_hash(key))
    if found is None:
        lookup_failed(request, now)
        raise Unauthorized("invalid API key", code="invalid_api_key")
    api_key, partner = found
    if api_key.expires_at is not None and api_key.expires_at <= now:
        raise Unauthorized("this API key has expired", code="api_key_expired")
    request.state.api_key = api_key
    limit = partner.api_rate_per_minute
    charge(request, ("key", api_key.id),
           svc.security.config.api_rate_per_minute if limit is None else limit, now)
    partner_allowed(partner)
    if scope is not None and not has_scope(api_key.scopes, scope):
        raise Forbidden(f"this API key lacks the scope {scope}", code="insufficient_permissions",
                        scope=scope)
    if svc.security.should_touch(api_key, now):
        await svc.store.touch_api_key(api_key.id, now)
    return partner


def current_key(request: Request) -> ApiKey:
    """The key `require_partner` accepted for this request."""
    key: ApiKey = request.state.api_key
    return key


def may(request: Request, scope: str) -> bool:
    """Whether this request's key also holds `scope` (e.g. to see send URLs)."""
    key: ApiKey | None = getattr(request.state, "api_key", None)
    return key is not None and has_scope(key.scopes, scope)


async def user_by_token(request: Request, partner: Partner, token: str) -> User:
    user = None
    if well_formed(token, USER_TOKEN):
        user = await services(request).store.user_by_token_hash(partner.id, token_hash(token))
    if user is None:
        raise NotFound("no such user", code="user_not_found")
    return user


async def require_user(request: Request, partner: Partner) -> User:
    token = request.headers.get("x-user-token", "").strip()
    if not token:
        raise Unauthorized("x-user-token header required", code="missing_user_token")
    return await user_by_token(request, partner, token)


async def partner_device(request: Request, partner: Partner) -> Device:
    session_id = request.path_params["session_id"]
    device = await services(request).store.device_by_session(partner.id, session_id)
    if device is None:
        raise NotFound("no such device", code="device_not_found")
    return device


class SendTokenCache:
    """token hash -> device, each entry for at most `SEND_TOKEN_TTL` seconds, and never past
    the end of a rotated token's grace period."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Device, float]] = {}
        self.generation = 0  # bumped by clear(): a lookup that raced a clear is not stored

    def get(self, key: str, now: float) -> Device | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            del self._entries[key]
            return None
        return entry[0]

    def put(self, key: str, device: Device, now: float, generation: int) -> None:
        if generation != self.generation:
            return
        if len(self._entries) >= SEND_TOKEN_CACHE_MAX:
            self._entries.clear()
        until = now + SEND_TOKEN_TTL
        if device.prev_token_until is not None and device.prev_token_until > now:
            until = min(until, device.prev_token_until)  # the token may be the previous one
        self._entries[key] = (device, until)

    def clear(self) -> None:
        self._entries.clear()
        self.generation += 1


def _send_tokens(request: Request) -> SendTokenCache:
    state = request.app.state
    cache: SendTokenCache | None = getattr(state, "send_tokens", None)
    if cache is None:
        cache = state.send_tokens = SendTokenCache()
    return cache


def forget_send_tokens(request: Request) -> None:
    """A device was deleted or its token rotated: look every send URL up again."""
    _send_tokens(request).clear()


async def device_by_send_token(request: Request, now: float) -> Device:
    """The device behind a send URL, charged to its rate limit; its partner must be active."""
    token = request.path_params["device_token"]
    check_blocked(request, now)
    svc = services(request)
    key = token_hash(token)
    cache = _send_tokens(request)
    device = cache.get(key, now)  # only well-formed tokens are ever cached
    if device is None and well_formed(token, DEVICE_TOKEN):
        generation = cache.generation
        device = await svc.store.device_by_token_hash(key, now)
        if device is not None:
            cache.put(key, device, now, generation)
    if device is None:
        lookup_failed(request, now)
        raise NotFound("unknown send URL", code="device_not_found")
    sec = svc.security
    partner = await sec.partner(svc.store, device.partner_id, now)
    if partner is None:
        raise NotFound("unknown send URL", code="device_not_found")
    limit = partner.send_rate_per_minute
    charge(request, ("send", device.id),
           sec.config.send_rate_per_minute if limit is None else limit, now,
           what="this send URL")
    partner_allowed(partner)
    return device
