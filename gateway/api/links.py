"""Device link pages: a partner makes an expiring, revocable link for an end user to link a device.

The link token (`lt_…`) is a credential for one thing only: showing that device's pairing page
(QR code, pairing code, status). It is random and shown once; the store keeps its SHA-256. It
reveals no partner key, device token or send URL.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.auth import partner_device, require_partner, services
from gateway.api.params import json_body
from gateway.api.responses import iso, success
from gateway.errors import BadRequest
from gateway.security.audit import record
from gateway.services import Services
from gateway.store import Device
from gateway.store.base import LinkToken
from gateway.tokens import new_token, token_hash, well_formed

LINK_TOKEN = "lt"  # noqa: S105 - a token prefix
DEFAULT_EXPIRES_IN = 86400.0
MIN_EXPIRES_IN = 60.0
MAX_EXPIRES_IN = 7 * 86400.0


def link_url(svc: Services, token: str) -> str:
    return f"{svc.config.public_url}/link/{token}"


async def make_link(svc: Services, device: Device,
                    expires_in: float = DEFAULT_EXPIRES_IN) -> tuple[str, LinkToken]:
    """A new link token for a device (the token itself is returned once, never stored)."""
    token = new_token(LINK_TOKEN)
    link = await svc.store.create_link(device.partner_id, device.id, token_hash(token),
                                       time.time() + expires_in)
    return token, link


async def find_link(svc: Services, token: str) -> tuple[LinkToken, Device] | None:
    """The live link behind a token and its device, or None (unknown, expired, revoked, or the
    device was deleted): every one of those looks the same to the caller."""
    if not well_formed(token, LINK_TOKEN):
        return None
    link = await svc.store.link_by_token_hash(token_hash(token), time.time())
    if link is None:
        return None
    device = await svc.store.device_by_id(link.device_id)
    if device is None or device.partner_id != link.partner_id:
        return None
    return link, device


def expires_in_field(value: object) -> float:
    if value is None:
        return DEFAULT_EXPIRES_IN
    if not isinstance(value, int | float) or isinstance(value, bool) \
            or not MIN_EXPIRES_IN <= value <= MAX_EXPIRES_IN:
        raise BadRequest(f"expires_in: seconds from {MIN_EXPIRES_IN:g} to {MAX_EXPIRES_IN:g} "
                         "(7 days)", code="invalid_field", field="expires_in")
    return float(value)


async def create_link(request: Request) -> Response:
    partner = await require_partner(request, "devices:write")
    device = await partner_device(request, partner)
    data = await json_body(request, required=False)
    expires_in = expires_in_field(data.get("expires_in"))
    svc = services(request)
    token, link = await make_link(svc, device, expires_in)
    await record(request, partner.id, "device.link_created", device.session_id,
                 expires_at=iso(link.expires_at))
    return success(201, link_url=link_url(svc, token), expires_at=iso(link.expires_at),
                   session_id=device.session_id)


async def revoke_links(request: Request) -> Response:
    partner = await require_partner(request, "devices:write")
    device = await partner_device(request, partner)
    revoked = await services(request).store.revoke_links(partner.id, device.id)
    await record(request, partner.id, "device.links_revoked", device.session_id,
                 revoked=revoked)
    return success(message="Link pages revoked", session_id=device.session_id, revoked=revoked)


routes = [
    Route("/partner/devices/{session_id}/link", create_link, methods=["POST"]),
    Route("/partner/devices/{session_id}/link", revoke_links, methods=["DELETE"]),
]
