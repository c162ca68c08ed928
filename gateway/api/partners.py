"""Partner registration and profile."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.auth import require_partner, services
from gateway.api.params import email_field, json_body, text_field
from gateway.api.responses import iso, success
from gateway.tokens import PARTNER_KEY, new_token, token_hash


async def register(request: Request) -> Response:
    data = await json_body(request)
    name = text_field(data, "name", max_len=200)
    email = email_field(data)
    domain = text_field(data, "domain", required=False, max_len=253)
    key = new_token(PARTNER_KEY)
    await services(request).store.create_partner(name, email, domain, token_hash(key))
    return success(201, api_key=key)


async def me(request: Request) -> Response:
    partner = await require_partner(request)
    stats = await services(request).store.partner_counts(partner.id)
    return success(name=partner.name, email=partner.email, domain=partner.domain,
                   status=partner.status, created_at=iso(partner.created_at), stats=stats)


routes = [
    Route("/partner/register", register, methods=["POST"]),
    Route("/partner/me", me, methods=["GET"]),
]
