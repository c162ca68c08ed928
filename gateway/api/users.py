"""End users of a partner."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.auth import may, require_partner, services, user_by_token
from gateway.api.devices import device_view
from gateway.api.params import email_field, json_body, text_field
from gateway.api.responses import iso, success
from gateway.tokens import USER_TOKEN, new_nonce, token_hash


async def create_user(request: Request) -> Response:
    partner = await require_partner(request, "users:write")
    data = await json_body(request)
    label = text_field(data, "label", max_len=200)
    email = email_field(data, required=False)
    svc = services(request)
    nonce = new_nonce()
    token = svc.vault.derive(USER_TOKEN, nonce)
    await svc.store.create_user(partner.id, label, email, nonce, token_hash(token))
    return success(201, user_token=token)


async def list_users(request: Request) -> Response:
    partner = await require_partner(request, "users:read")
    svc = services(request)
    users = await svc.store.list_users(partner.id)
    devices = await svc.store.list_devices(partner.id)
    count: dict[int, int] = {}
    for d in devices:
        count[d.user_id] = count.get(d.user_id, 0) + 1
    return success(users=[{"user_token": svc.user_token(u), "label": u.label, "email": u.email,
                           "devices": count.get(u.id, 0), "created_at": iso(u.created_at)}
                          for u in users])


async def user_devices(request: Request) -> Response:
    partner = await require_partner(request, "users:read")
    user = await user_by_token(request, partner, request.path_params["user_token"])
    svc = services(request)
    devices = await svc.store.list_devices(partner.id, user.id)
    send = may(request, "messages:send")
    return success(devices=[device_view(svc, d, send=send) for d in devices])


routes = [
    Route("/partner/users", create_user, methods=["POST"]),
    Route("/partner/users", list_users, methods=["GET"]),
    Route("/partner/users/{user_token}/devices", user_devices, methods=["GET"]),
]
