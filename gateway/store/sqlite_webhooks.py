"""Webhook storage for the SQLite store: endpoints, the delivery outbox and the attempt log.

Message status events reach webhooks without touching the send path: every status change
already writes a `message_events` row in the same transaction; `pump_message_events` turns new
rows into deliveries and advances its cursor in one transaction, so each event is fanned out
exactly once, however the process stops.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import aiosqlite
import orjson

from gateway.store.base import WebhookAttempt, WebhookDelivery, WebhookEndpoint

T = TypeVar("T")

CURSOR_KEY = "webhook_message_event_cursor"
WEBHOOK_MESSAGE_STATUSES = ("queued", "sent", "delivered", "read", "failed", "expired")

_MARKS = ",".join("?" * len(WEBHOOK_MESSAGE_STATUSES))
_PUMP_SQL = (  # placeholders only: the statuses are bound, not formatted in
    "SELECT e.id, e.status, e.detail, e.at, m.id, m.partner_id, m.device_id, m.recipient, "  # noqa: S608
    "m.kind, d.session_id FROM message_events e JOIN messages m ON m.id = e.message_id "
    f"JOIN devices d ON d.id = m.device_id WHERE e.id > ? AND e.status IN ({_MARKS}) "
    "ORDER BY e.id LIMIT ?"
)


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(12)


def event_body(event_id: str, event_type: str, at: float, data: dict[str, Any]) -> str:
    """The JSON body of a webhook (Standard Webhooks' recommended shape)."""
    return orjson.dumps({"id": event_id, "type": event_type, "timestamp": _iso(at),
                         "data": data}).decode()


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class WebhookStoreMixin:
    """Mixed into SQLiteStore, which provides `_write`, `_exec`, `_one` and `_all`."""

    _write: Callable[[Callable[[aiosqlite.Connection], Awaitable[Any]]], Awaitable[Any]]
    _exec: Callable[..., Awaitable[aiosqlite.Cursor]]
    _one: Callable[..., Awaitable[aiosqlite.Row | None]]
    _all: Callable[..., Awaitable[list[aiosqlite.Row]]]

    async def create_webhook(
        self, partner_id: int, public_id: str, url: str, secret_nonce: str,
        events: tuple[str, ...], device_id: int | None,
    ) -> WebhookEndpoint:
        now = time.time()
        cur = await self._exec(
            "INSERT INTO webhook_endpoints (partner_id, public_id, url, secret_nonce, events, "
            "device_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (partner_id, public_id, url, secret_nonce, ",".join(events), device_id, now))
        assert cur.lastrowid is not None
        return WebhookEndpoint(cur.lastrowid, partner_id, public_id, url, secret_nonce, None,
                               None, events, device_id, "active", None, None, now)

    async def list_webhooks(self, partner_id: int) -> list[WebhookEndpoint]:
        rows = await self._all(
            "SELECT * FROM webhook_endpoints WHERE partner_id = ? AND deleted_at IS NULL "
            "ORDER BY id", (partner_id,))
        return [_endpoint(r) for r in rows]

    async def webhook_by_public_id(self, partner_id: int,
                                   public_id: str) -> WebhookEndpoint | None:
        row = await self._one(
            "SELECT * FROM webhook_endpoints WHERE public_id = ? AND partner_id = ? "
            "AND deleted_at IS NULL", (public_id, partner_id))
        return _endpoint(row) if row else None

    async def webhook_by_id(self, endpoint_id: int) -> WebhookEndpoint | None:
        row = await self._one(
            "SELECT * FROM webhook_endpoints WHERE id = ? AND deleted_at IS NULL", (endpoint_id,))
        return _endpoint(row) if row else None

    async def delete_webhook(self, partner_id: int, endpoint_id: int) -> None:
        async def job(db: aiosqlite.Connection) -> None:
            await db.execute(
                "UPDATE webhook_endpoints SET deleted_at = ? WHERE id = ? AND partner_id = ?",
                (time.time(), endpoint_id, partner_id))
            await db.execute(
                "UPDATE webhook_deliveries SET status = 'failed' WHERE endpoint_id = ? "
                "AND status = 'pending'", (endpoint_id,))

        await self._write(job)

    async def rotate_webhook_secret(self, partner_id: int, endpoint_id: int, nonce: str,
                                    prev_until: float) -> None:
        await self._exec(
            "UPDATE webhook_endpoints SET prev_secret_nonce = secret_nonce, "
            "prev_secret_until = ?, secret_nonce = ? WHERE id = ? AND partner_id = ?",
            (prev_until, nonce, endpoint_id, partner_id))

    async def set_webhook_status(self, endpoint_id: int, status: str,
                                 reason: str | None) -> None:
        await self._exec(
            "UPDATE webhook_endpoints SET status = ?, disabled_reason = ?, failing_since = NULL "
            "WHERE id = ?", (status, reason, endpoint_id))

    async def fanout(self, partner_id: int, device_id: int | None, event_type: str,
                     data: dict[str, Any], *, endpoint_id: int | None = None) -> str:
        event_id = new_event_id()

        async def job(db: aiosqlite.Connection) -> None:
            await _fanout(db, partner_id, device_id, event_type, data, event_id, time.time(),
                          endpoint_id)

        await self._write(job)
        return event_id

    async def pump_message_events(self, limit: int) -> int:
        async def job(db: aiosqlite.Connection) -> int:
            async with db.execute("SELECT value FROM meta WHERE key = ?", (CURSOR_KEY,)) as c:
                row = await c.fetchone()
            cursor = int(row[0]) if row else 0
            async with db.execute("SELECT 1 FROM webhook_endpoints WHERE status = 'active' "
                                  "AND deleted_at IS NULL LIMIT 1") as c:
                any_endpoint = await c.fetchone()
            if any_endpoint is None:
                # Nobody listens: move the cursor past everything (an endpoint receives events
                # from its creation on) without fanning out event by event.
                await _skip_to_newest(db, cursor)
                return 0
            async with db.execute(_PUMP_SQL, (cursor, *WEBHOOK_MESSAGE_STATUSES, limit)) as c:
                rows = list(await c.fetchall())
            if not rows:
                # Skip past events that no webhook takes (sending, retry) without scanning again.
                await _skip_to_newest(db, cursor)
                return 0
            for eid, status, detail, at, mid, partner_id, device_id, to, kind, sid in rows:
                data = {"message_id": mid, "session_id": sid, "to": to, "kind": kind,
                        "status": status}
                if detail:
                    data["detail"] = detail
                await _fanout(db, partner_id, device_id, f"message.{status}", data,
                              f"evt_m{eid}", at, None)
                cursor = eid
            await db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                             (CURSOR_KEY, str(cursor)))
            return len(rows)

        result: int = await self._write(job)
        return result

    async def claim_deliveries(self, now: float, limit: int,
                               lease: float) -> list[WebhookDelivery]:
        async def job(db: aiosqlite.Connection) -> list[WebhookDelivery]:
            cur = await db.execute(
                "UPDATE webhook_deliveries SET claimed_until = ?, attempts = attempts + 1 "
                "WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' "
                "AND next_attempt_at <= ? AND claimed_until <= ? ORDER BY next_attempt_at, id "
                "LIMIT ?) RETURNING *", (now + lease, now, now, limit))
            return [_delivery(r) for r in await cur.fetchall()]

        result: list[WebhookDelivery] = await self._write(job)
        return result

    async def finish_attempt(
        self, delivery: WebhookDelivery, attempt: WebhookAttempt, *, outcome: str,
        retry_at: float | None, disable_after: float,
    ) -> WebhookEndpoint | None:
        async def job(db: aiosqlite.Connection) -> WebhookEndpoint | None:
            await db.execute(
                "INSERT INTO webhook_attempts (delivery_id, at, status_code, latency_ms, error, "
                "response) VALUES (?, ?, ?, ?, ?, ?)",
                (delivery.id, attempt.at, attempt.status_code, attempt.latency_ms,
                 attempt.error, attempt.response))
            if outcome == "delivered":
                await db.execute(
                    "UPDATE webhook_deliveries SET status = 'delivered', delivered_at = ?, "
                    "claimed_until = 0 WHERE id = ?", (attempt.at, delivery.id))
                await db.execute("UPDATE webhook_endpoints SET failing_since = NULL "
                                 "WHERE id = ?", (delivery.endpoint_id,))
                return None
            if retry_at is None:
                await db.execute("UPDATE webhook_deliveries SET status = 'failed', "
                                 "claimed_until = 0 WHERE id = ?", (delivery.id,))
            else:
                await db.execute(
                    "UPDATE webhook_deliveries SET next_attempt_at = ?, claimed_until = 0 "
                    "WHERE id = ?", (retry_at, delivery.id))
            cur = await db.execute(
                "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?) "
                "WHERE id = ? RETURNING failing_since, status", (attempt.at, delivery.endpoint_id))
            row = await cur.fetchone()
            gone = outcome == "gone"  # 410: the receiver asked us to stop
            if row is None or row[1] != "active":
                return None
            if not gone and attempt.at - float(row[0]) < disable_after:
                return None
            reason = ("the endpoint answered 410 Gone" if gone else
                      f"every delivery failed for {disable_after / 86400:g} days")
            cur = await db.execute(
                "UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = ? "
                "WHERE id = ? RETURNING *", (reason, delivery.endpoint_id))
            disabled = await cur.fetchone()
            await db.execute("UPDATE webhook_deliveries SET status = 'failed' "
                             "WHERE endpoint_id = ? AND status = 'pending'",
                             (delivery.endpoint_id,))
            return _endpoint(disabled) if disabled else None

        result: WebhookEndpoint | None = await self._write(job)
        return result

    async def webhook_backlog(self) -> int:
        row = await self._one("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
        return int(row[0]) if row else 0

    async def release_deliveries(self, ids: list[int]) -> None:
        async def job(db: aiosqlite.Connection) -> None:
            await db.executemany(
                "UPDATE webhook_deliveries SET claimed_until = 0, attempts = attempts - 1 "
                "WHERE id = ?", [(i,) for i in ids])

        await self._write(job)

    async def list_deliveries(self, endpoint_id: int, limit: int) -> list[WebhookDelivery]:
        rows = await self._all(
            "SELECT * FROM webhook_deliveries WHERE endpoint_id = ? ORDER BY id DESC LIMIT ?",
            (endpoint_id, limit))
        return [_delivery(r) for r in rows]

    async def delivery_attempts(self, delivery_id: int) -> list[WebhookAttempt]:
        rows = await self._all(
            "SELECT at, status_code, latency_ms, error, response FROM webhook_attempts "
            "WHERE delivery_id = ? ORDER BY id", (delivery_id,))
        return [WebhookAttempt(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def redeliver(self, endpoint_id: int, delivery_id: int) -> bool:
        cur = await self._exec(
            "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?, "
            "claimed_until = 0 WHERE id = ? AND endpoint_id = ?",
            (time.time(), delivery_id, endpoint_id))
        return bool(cur.rowcount)


async def _skip_to_newest(db: aiosqlite.Connection, cursor: int) -> None:
    """Move the pump's cursor past every event written so far."""
    async with db.execute("SELECT COALESCE(MAX(id), 0) FROM message_events") as c:
        top = await c.fetchone()
    newest = int(top[0]) if top else cursor
    if newest > cursor:
        await db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                         (CURSOR_KEY, str(newest)))


async def _fanout(db: aiosqlite.Connection, partner_id: int, device_id: int | None,
                  event_type: str, data: dict[str, Any], event_id: str, at: float,
                  endpoint_id: int | None) -> None:
    args: list[Any] = [partner_id]
    where = "partner_id = ? AND deleted_at IS NULL"
    if endpoint_id is not None:
        where += " AND id = ?"
        args.append(endpoint_id)
    else:
        where += " AND status = 'active'"
    async with db.execute(
            f"SELECT id, events, device_id FROM webhook_endpoints WHERE {where}",  # noqa: S608
            args) as cur:
        endpoints = list(await cur.fetchall())
    body = event_body(event_id, event_type, at, data)
    for eid, events, only_device in endpoints:
        if endpoint_id is None and not _matches(events.split(","), event_type):
            continue
        if endpoint_id is None and only_device is not None and only_device != device_id:
            continue
        await db.execute(
            "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload, "
            "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (eid, event_id, event_type, body, 0, time.time()))


def _matches(patterns: Iterable[str], event_type: str) -> bool:
    for p in patterns:
        if p == "*" or p == event_type or (p.endswith(".*") and event_type.startswith(p[:-1])):
            return True
    return False


def _endpoint(r: aiosqlite.Row) -> WebhookEndpoint:
    return WebhookEndpoint(r["id"], r["partner_id"], r["public_id"], r["url"], r["secret_nonce"],
                           r["prev_secret_nonce"], r["prev_secret_until"],
                           tuple(r["events"].split(",")), r["device_id"], r["status"],
                           r["failing_since"], r["disabled_reason"], r["created_at"])


def _delivery(r: aiosqlite.Row) -> WebhookDelivery:
    return WebhookDelivery(r["id"], r["endpoint_id"], r["event_id"], r["event_type"],
                           r["payload"], r["status"], r["attempts"], r["next_attempt_at"],
                           r["created_at"], r["delivered_at"])
