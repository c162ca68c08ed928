"""Who is calling: the partner behind `x-api-key`, the end user behind `x-user-token`.

Lookups go by the SHA-256 of a well-formed token, so an unknown or another partner's credential
cannot be told apart from a made-up one; resources of other partners answer 404, never 403.

Send-URL tokens are looked up on every send, so a hit is remembered for `SEND_TOKEN_TTL` seconds
(never a miss: a new token works at once). Deleting a device or rotating its token clears the
cache of this process (`forget_send_tokens`), so a deleted send URL answers 404 at once; another
process sharing the database (the CLI) is seen within the TTL.
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.errors import NotFound, Unauthorized
from gateway.services import Services
from gateway.store import Device, Partner, User
from gateway.tokens import DEVICE_TOKEN, PARTNER_KEY, USER_TOKEN, token_hash, well_formed

SEND_TOKEN_TTL = 5.0
SEND_TOKEN_CACHE_MAX = 10_000


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def require_partner(request: Request) -> Partner:
    key = request.headers.get("x-api-key", "").strip()
    if not key:
        raise Unauthorized("x-api-key header required", code="missing_api_key")
    partner = None
    if well_formed(key, PARTNER_KEY):
        partner = await services(request).store.partner_by_key_hash(token_hash(key))
    if partner is None:
        raise Unauthorized("invalid API key", code="invalid_api_key")
    return partner


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
    token = request.path_params["device_token"]
    device = None
    if well_formed(token, DEVICE_TOKEN):
        key = token_hash(token)
        cache = _send_tokens(request)
        device = cache.get(key, now)
        if device is None:
            generation = cache.generation
            device = await services(request).store.device_by_token_hash(key, now)
            if device is not None:
                cache.put(key, device, now, generation)
    if device is None:
        raise NotFound("unknown send URL", code="device_not_found")
    return device
