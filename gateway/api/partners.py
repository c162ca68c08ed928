"""Partner registration and profile.

Registration follows `security.registration`: `open` (the key works at once), `approval` (the
partner is `pending` and its key answers 403 `partner_pending` until the operator approves) or
`closed` (403 `registration_closed`; the operator creates partners). Each address may register
`security.register_per_hour` times an hour.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.auth import current_key, require_partner, services
from gateway.api.params import email_field, json_body, text_field
from gateway.api.responses import iso, success
from gateway.errors import Forbidden
from gateway.security.audit import record
from gateway.security.guard import charge_ip
from gateway.security.scopes import expand
from gateway.tokens import PARTNER_KEY, new_token, token_hash


async def register(request: Request) -> Response:
    svc = services(request)
    policy = svc.config.security.registration
    if policy == "closed":
        raise Forbidden("registration is closed; ask the operator for an account",
                        code="registration_closed")
    if svc.config.security.register_per_hour:
        charge_ip(request, "register", svc.config.security.register_per_hour, 3600.0)
    data = await json_body(request)
    name = text_field(data, "name", max_len=200)
    email = email_field(data)
    domain = text_field(data, "domain", required=False, max_len=253)
    key = new_token(PARTNER_KEY)
    status = "pending" if policy == "approval" else "active"
    partner = await svc.store.create_partner(name, email, domain, token_hash(key), status)
    await svc.store.set_key_hint(token_hash(key), key[-4:])
    await record(request, partner.id, "partner.registered", str(partner.id), name=name,
                 email=email, status=status)
    if status == "pending":
        return success(201, api_key=key, status=status,
                       message="Registered; the key works once the operator approves the "
                               "account")
    return success(201, api_key=key, status=status)


async def me(request: Request) -> Response:
    partner = await require_partner(request)
    key = current_key(request)
    stats = await services(request).store.partner_counts(partner.id)
    return success(name=partner.name, email=partner.email, domain=partner.domain,
                   status=partner.status, created_at=iso(partner.created_at), stats=stats,
                   key={"key_id": key.public_id, "name": key.name,
                        "scopes": expand(key.scopes), "expires_at": iso(key.expires_at)})


routes = [
    Route("/partner/register", register, methods=["POST"]),
    Route("/partner/me", me, methods=["GET"]),
]
