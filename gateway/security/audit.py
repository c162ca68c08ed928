"""The audit log: who did what security-relevant thing, from where, when.

Recorded after the action itself has committed (one more write in the same group commit
window); the actor is the API key that authenticated the request (its id and name), the
operator, the partner console ("console": signed in with the partner's key), or "public" for an
unauthenticated request such as a registration.

Actions: partner.registered, partner.created, partner.approved, partner.suspended,
partner.resumed, partner.limits_changed, partner.key_rotated, key.created, key.revoked,
device.deleted, device.token_rotated, device.link_created, device.links_revoked,
webhook.created, webhook.deleted, webhook.secret_rotated, webhook.enabled (and, with the wallet,
wallet.adjusted).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from gateway.api.responses import iso
from gateway.security.guard import client_ip
from gateway.store.base import ApiKey, AuditEntry


async def record(conn: HTTPConnection, partner_id: int | None, action: str,
                 target: str | None = None, **detail: Any) -> None:
    key: ApiKey | None = getattr(conn.state, "api_key", None)
    if key is not None:
        actor, actor_id, actor_name = "key", key.public_id, key.name
    elif getattr(conn.state, "operator", False):
        actor, actor_id, actor_name = "operator", None, None
    elif getattr(conn.state, "console", False):  # a partner signed in to the console
        actor, actor_id, actor_name = "console", None, "partner console"
    else:
        actor, actor_id, actor_name = "public", None, None
    store = conn.app.state.services.store
    await store.add_audit(partner_id, actor, actor_id, actor_name, action, target,
                          client_ip(conn), detail)


def entry_view(entry: AuditEntry, *, operator_ip: bool = True) -> dict[str, Any]:
    return {
        "id": entry.id, "at": iso(entry.at), "action": entry.action, "target": entry.target,
        "actor": entry.actor, "key_id": entry.actor_id, "key_name": entry.actor_name,
        "ip": entry.ip if operator_ip or entry.actor != "operator" else None,
        "partner_id": entry.partner_id, "detail": entry.detail,
    }
