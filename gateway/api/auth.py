"""Who is calling: the partner behind `x-api-key`, the end user behind `x-user-token`.

Lookups go by the SHA-256 of a well-formed token, so an unknown or another partner's credential
cannot be told apart from a made-up one; resources of other partners answer 404, never 403.
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.errors import NotFound, Unauthorized
from gateway.services import Services
from gateway.store import Device, Partner, User
from gateway.tokens import DEVICE_TOKEN, PARTNER_KEY, USER_TOKEN, token_hash, well_formed


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


async def device_by_send_token(request: Request, now: float) -> Device:
    token = request.path_params["device_token"]
    device = None
    if well_formed(token, DEVICE_TOKEN):
        device = await services(request).store.device_by_token_hash(token_hash(token), now)
    if device is None:
        raise NotFound("unknown send URL", code="device_not_found")
    return device
