"""A partner's API keys (up to `MAX_KEYS`, named, scoped, shown once, revocable, optionally
expiring) and its audit log.

A key with `keys:manage` may create keys only with scopes it holds itself, so no key can mint a
stronger one; the partner's last key that can manage keys cannot be revoked (the operator can
always issue a new primary key with `wagate partners rotate-key`).
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.api.auth import current_key, require_partner, services
from gateway.api.params import json_body, text_field
from gateway.api.responses import iso, success
from gateway.errors import BadRequest, Conflict, Forbidden, NotFound
from gateway.security.audit import entry_view, record
from gateway.security.scopes import ALL, expand, has_scope, parse_scopes
from gateway.store.base import ApiKey
from gateway.tokens import PARTNER_KEY, new_token, token_hash

MAX_KEYS = 10
MAX_LIFETIME = 5 * 366 * 86400.0
AUDIT_PAGE = 200


def key_view(key: ApiKey, current: ApiKey | None = None,
             now: float | None = None) -> dict[str, Any]:
    now = time.time() if now is None else now
    return {
        "key_id": key.public_id, "name": key.name,
        "hint": f"{PARTNER_KEY}_…{key.hint}" if key.hint else None,
        "scopes": expand(key.scopes), "primary": key.is_primary,
        "created_at": iso(key.created_at), "expires_at": iso(key.expires_at),
        "expired": key.expires_at is not None and key.expires_at <= now,
        "last_used_at": iso(key.last_used_at),
        "current": current is not None and current.id == key.id,
    }


async def list_keys(request: Request) -> Response:
    partner = await require_partner(request, "keys:manage")
    keys = await services(request).store.list_api_keys(partner.id)
    current = current_key(request)
    return success(keys=[key_view(k, current) for k in keys], max_keys=MAX_KEYS)


def _expires_at(value: Any, now: float) -> float | None:
    if value is None:
        return None
    at: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        at = float(value)
    elif isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            at = None
    if at is None or not now + 60 <= at <= now + MAX_LIFETIME:
        raise BadRequest("expires_at: an ISO 8601 time (or unix time) between a minute and five "
                         "years from now", code="invalid_field", field="expires_at")
    return at


async def create_key(request: Request) -> Response:
    partner = await require_partner(request, "keys:manage")
    caller = current_key(request)
    data = await json_body(request)
    name = text_field(data, "name", max_len=100)
    scopes = caller.scopes if data.get("scopes") is None else parse_scopes(data["scopes"])
    if caller.scopes != ALL:
        wider = [s for s in expand(scopes) if not has_scope(caller.scopes, s)]
        if wider:
            raise Forbidden(f"a key can only create keys with scopes it holds; this one lacks "
                            f"{', '.join(wider)}", code="insufficient_permissions",
                            scope=wider[0])
    now = time.time()
    expires_at = _expires_at(data.get("expires_at"), now)
    key = new_token(PARTNER_KEY)
    svc = services(request)
    created = await svc.store.create_api_key(partner.id, "key_" + secrets.token_hex(8), name,
                                             token_hash(key), key[-4:], scopes, expires_at,
                                             MAX_KEYS)
    if created is None:
        raise Conflict(f"at most {MAX_KEYS} live API keys per partner; revoke one first",
                       code="key_limit_reached")
    await record(request, partner.id, "key.created", created.public_id, name=name,
                 scopes=expand(scopes), expires_at=iso(expires_at))
    return success(201, api_key=key, key=key_view(created, caller, now))


async def revoke_key(request: Request) -> Response:
    partner = await require_partner(request, "keys:manage")
    store = services(request).store
    public_id = request.path_params["key_id"]
    keys = await store.list_api_keys(partner.id)
    target = next((k for k in keys if k.public_id == public_id), None)
    if target is None:
        raise NotFound("no such API key", code="key_not_found")
    caller = current_key(request)
    if caller.scopes != ALL:
        wider = [s for s in expand(target.scopes) if not has_scope(caller.scopes, s)]
        if wider or target.scopes == ALL:
            raise Forbidden("a key can only revoke keys whose scopes it holds; this one lacks "
                            + (", ".join(wider) or "*"), code="insufficient_permissions",
                            scope=(wider or ["*"])[0])
    now = time.time()
    managers = [k for k in keys if has_scope(k.scopes, "keys:manage")
                and (k.expires_at is None or k.expires_at > now)]
    if managers == [target]:
        raise Conflict("this is the last key that can manage keys; create another one first",
                       code="last_manage_key")
    revoked = await store.revoke_api_key(partner.id, public_id)
    if revoked is None:
        raise NotFound("no such API key", code="key_not_found")
    await record(request, partner.id, "key.revoked", public_id, name=target.name)
    return success(message="API key revoked", key_id=public_id)


def page_args(request: Request) -> tuple[int, int | None]:
    q = request.query_params
    raw = q.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= AUDIT_PAGE:
        raise BadRequest(f"limit: a whole number from 1 to {AUDIT_PAGE}", code="invalid_field",
                         field="limit")
    cursor = q.get("cursor")
    if cursor is not None and not (cursor.isdigit() and len(cursor) < 19):
        raise BadRequest("cursor: the next_cursor of the previous page", code="invalid_field",
                         field="cursor")
    return int(raw), int(cursor) if cursor is not None else None


async def partner_audit(request: Request) -> Response:
    partner = await require_partner(request, "audit:read")
    limit, before = page_args(request)
    entries = await services(request).store.list_audit(partner.id, limit + 1, before)
    more = len(entries) > limit
    entries = entries[:limit]
    return success(entries=[entry_view(e, operator_ip=False) for e in entries],
                   next_cursor=str(entries[-1].id) if more and entries else None)


routes = [
    Route("/partner/keys", list_keys, methods=["GET"]),
    Route("/partner/keys", create_key, methods=["POST"]),
    Route("/partner/keys/{key_id}", revoke_key, methods=["DELETE"]),
    Route("/partner/audit", partner_audit, methods=["GET"]),
]
