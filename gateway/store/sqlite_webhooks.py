"""Webhook storage for the SQLite store: endpoints, the delivery outbox and the attempt log.

Message status events reach webhooks without touching the send path: every status change
already writes a `message_events` row in the same transaction; `pump_message_events` turns new
rows into deliveries and advances its cursor in one transaction, so each event is fanned out
exactly once, however the process stops.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import aiosqlite
import orjson

from gateway.ids import RandomHex
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


_hex24 = RandomHex(12)


def new_event_id() -> str:
    return "evt_" + _hex24()


def event_body(event_id: str, event_type: str, at: float, data: dict[str, Any]) -> str:
    """The JSON body of a webhook (Standard Webhooks' recommended shape)."""
    return orjson.dumps({"id": event_id, "type": event_type, "timestamp": _iso(at),
                         "data": data}).decode()


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class WebhookStoreMixin:
    """Mixed into SQLiteStore, which provides `_write`, `_write_in_thread`, `_exec`, `_one`
    and `_all`."""

    _write: Callable[[Callable[[aiosqlite.Connection], Awaitable[Any]]], Awaitable[Any]]
    _write_in_thread: Callable[..., Awaitable[Any]]
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
                "AND status IN ('pending', 'held')", (endpoint_id,))

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
        await self._write_in_thread(
            lambda db: _fanout(db, partner_id, device_id, event_type, data, event_id,
                               time.time(), endpoint_id))
        return event_id

    async def pump_message_events(self, limit: int) -> int:
        def job(db: sqlite3.Connection) -> int:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (CURSOR_KEY,)).fetchone()
            cursor = int(row[0]) if row else 0
            any_endpoint = db.execute("SELECT 1 FROM webhook_endpoints WHERE status = 'active' "
                                      "AND deleted_at IS NULL LIMIT 1").fetchone()
            if any_endpoint is None:
                # Nobody listens: move the cursor past everything (an endpoint receives events
                # from its creation on) without fanning out event by event.
                _skip_to_newest(db, cursor)
                return 0
            rows = db.execute(_PUMP_SQL, (cursor, *WEBHOOK_MESSAGE_STATUSES, limit)).fetchall()
            if not rows:
                # Skip past events that no webhook takes (sending, retry) without scanning again.
                _skip_to_newest(db, cursor)
                return 0
            endpoints = _Endpoints(db)
            for eid, status, detail, at, mid, partner_id, device_id, to, kind, sid in rows:
                data = {"message_id": mid, "session_id": sid, "to": to, "kind": kind,
                        "status": status}
                if detail:
                    data["detail"] = detail
                _fanout(db, partner_id, device_id, f"message.{status}", data, f"evt_m{eid}",
                        at, None, endpoints)
                cursor = eid
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                       (CURSOR_KEY, str(cursor)))
            return len(rows)

        pumped: int = await self._write_in_thread(job)
        return pumped

    async def claim_deliveries(self, now: float, limit: int, lease: float, *,
                               per_endpoint: int,
                               busy: dict[int, int]
                               ) -> list[tuple[WebhookDelivery, WebhookEndpoint | None]]:
        """Up to `limit` due deliveries, oldest first, at most `per_endpoint` in flight per
        endpoint counting `busy`; endpoints already full are skipped in the scan, so one
        endpoint's backlog cannot hold back the others' deliveries. (A suspended partner's
        deliveries are `held`, not `pending`: see `hold_webhooks`.) Each comes with its
        endpoint as of the claim (None once deleted), read in the same transaction."""
        full = orjson.dumps([e for e, n in busy.items() if n >= per_endpoint]).decode()
        in_flight = orjson.dumps({str(e): n for e, n in busy.items() if n}).decode()
        # Full endpoints are skipped in the scan; a partly busy one can hold at most
        # `per_endpoint` rows of the window that its cap then drops.
        window = limit + per_endpoint * len(busy)

        def job(db: sqlite3.Connection
                ) -> list[tuple[WebhookDelivery, WebhookEndpoint | None]]:
            cur = db.execute(
                "UPDATE webhook_deliveries SET claimed_until = ?, attempts = attempts + 1 "
                "WHERE id IN (SELECT id FROM ("
                "  SELECT id, endpoint_id, next_attempt_at, ROW_NUMBER() OVER ("
                "    PARTITION BY endpoint_id ORDER BY next_attempt_at, id) AS rn FROM ("
                "      SELECT id, endpoint_id, next_attempt_at FROM webhook_deliveries "
                "      WHERE status = 'pending' AND next_attempt_at <= ? AND claimed_until <= ? "
                "      AND endpoint_id NOT IN (SELECT value FROM json_each(?)) "
                "      ORDER BY next_attempt_at, id LIMIT ?)) "
                "  WHERE rn <= ? - COALESCE(json_extract(?, '$.\"' || endpoint_id || '\"'), 0) "
                "  ORDER BY next_attempt_at, id LIMIT ?) RETURNING *",
                (now + lease, now, now, full, window, per_endpoint, in_flight, limit))
            claimed = sorted((_delivery(r) for r in cur.fetchall()),
                             key=lambda d: (d.next_attempt_at, d.id))
            ids = sorted({d.endpoint_id for d in claimed})
            endpoints = {r["id"]: _endpoint(r) for r in db.execute(
                f"SELECT * FROM webhook_endpoints WHERE deleted_at IS NULL "  # noqa: S608
                f"AND id IN ({','.join('?' * len(ids))})", ids)} if ids else {}
            return [(d, endpoints.get(d.endpoint_id)) for d in claimed]

        result: list[tuple[WebhookDelivery, WebhookEndpoint | None]] = \
            await self._write_in_thread(job)
        return result

    async def finish_attempt(
        self, delivery: WebhookDelivery, attempt: WebhookAttempt, *, outcome: str,
        retry_at: float | None, disable_after: float,
    ) -> WebhookEndpoint | None:
        if outcome == "delivered":
            # The common case, and set-based: adjacent successes share three statements.
            done = (delivery, attempt)
            await self._write_in_thread(lambda db: _delivered(db, [done])[0], _delivered, done)
            return None

        def job(db: sqlite3.Connection) -> WebhookEndpoint | None:
            _log_attempts(db, [(delivery, attempt)])
            if retry_at is None:
                db.execute("UPDATE webhook_deliveries SET status = 'failed', "
                           "claimed_until = 0 WHERE id = ?", (delivery.id,))
            else:
                db.execute(
                    "UPDATE webhook_deliveries SET next_attempt_at = ?, claimed_until = 0 "
                    "WHERE id = ?", (retry_at, delivery.id))
            row = db.execute(
                "UPDATE webhook_endpoints SET failing_since = COALESCE(failing_since, ?) "
                "WHERE id = ? RETURNING failing_since, status",
                (attempt.at, delivery.endpoint_id)).fetchone()
            gone = outcome == "gone"  # 410: the receiver asked us to stop
            if row is None or row[1] != "active":
                return None
            if not gone and attempt.at - float(row[0]) < disable_after:
                return None
            reason = ("the endpoint answered 410 Gone" if gone else
                      f"every delivery failed for {disable_after / 86400:g} days")
            disabled = db.execute(
                "UPDATE webhook_endpoints SET status = 'disabled', disabled_reason = ? "
                "WHERE id = ? RETURNING *", (reason, delivery.endpoint_id)).fetchone()
            db.execute("UPDATE webhook_deliveries SET status = 'failed' "
                       "WHERE endpoint_id = ? AND status IN ('pending', 'held')",
                       (delivery.endpoint_id,))
            return _endpoint(disabled) if disabled else None

        result: WebhookEndpoint | None = await self._write_in_thread(job)
        return result

    async def webhook_backlog(self) -> int:
        row = await self._one("SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'")
        return int(row[0]) if row else 0

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


def _log_attempts(db: sqlite3.Connection,
                  done: list[tuple[WebhookDelivery, WebhookAttempt]]) -> None:
    db.executemany(
        "INSERT INTO webhook_attempts (delivery_id, at, status_code, latency_ms, error, "
        "response) VALUES (?, ?, ?, ?, ?, ?)",
        [(d.id, a.at, a.status_code, a.latency_ms, a.error, a.response) for d, a in done])


def _delivered(db: sqlite3.Connection,
               done: list[tuple[WebhookDelivery, WebhookAttempt]]) -> list[None]:
    """Log successful attempts, settle their deliveries, clear their endpoints' failure clock."""
    _log_attempts(db, done)
    db.executemany("UPDATE webhook_deliveries SET status = 'delivered', delivered_at = ?, "
                   "claimed_until = 0 WHERE id = ?", [(a.at, d.id) for d, a in done])
    ids = sorted({d.endpoint_id for d, _ in done})
    db.execute("UPDATE webhook_endpoints SET failing_since = NULL "  # noqa: S608
               f"WHERE id IN ({','.join('?' * len(ids))}) AND failing_since IS NOT NULL", ids)
    return [None] * len(done)


def hold_webhooks(db: sqlite3.Connection, partner_id: int, held: bool) -> None:
    """A suspended partner's deliveries wait as `held` (not attempted, so they neither fail nor
    count towards disabling, and claims never scan them); on resume they are `pending` again
    and its endpoints' failure clocks restart."""
    old, new = ("pending", "held") if held else ("held", "pending")
    db.execute("UPDATE webhook_deliveries SET status = ? WHERE status = ? AND endpoint_id IN "
               "(SELECT id FROM webhook_endpoints WHERE partner_id = ?)", (new, old, partner_id))
    if not held:
        db.execute("UPDATE webhook_endpoints SET failing_since = NULL "
                   "WHERE partner_id = ? AND failing_since IS NOT NULL", (partner_id,))


def _skip_to_newest(db: sqlite3.Connection, cursor: int) -> None:
    """Move the pump's cursor past every event written so far."""
    top = db.execute("SELECT COALESCE(MAX(id), 0) FROM message_events").fetchone()
    newest = int(top[0]) if top else cursor
    if newest > cursor:
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                   (CURSOR_KEY, str(newest)))


class _Endpoints:
    """Each partner's active endpoints and whether the partner is suspended, read once per pump
    batch rather than once per event."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.by_partner: dict[int, list[Any]] = {}
        self.suspended: dict[int, bool] = {}

    def of(self, partner_id: int) -> list[Any]:
        if partner_id not in self.by_partner:
            self.by_partner[partner_id] = self.db.execute(
                "SELECT id, events, device_id FROM webhook_endpoints WHERE partner_id = ? "
                "AND deleted_at IS NULL AND status = 'active'", (partner_id,)).fetchall()
        return self.by_partner[partner_id]

    def held(self, partner_id: int) -> bool:
        if partner_id not in self.suspended:
            row = self.db.execute("SELECT status FROM partners WHERE id = ?",
                                  (partner_id,)).fetchone()
            self.suspended[partner_id] = row is not None and row[0] == "suspended"
        return self.suspended[partner_id]


def _fanout(db: sqlite3.Connection, partner_id: int, device_id: int | None, event_type: str,
            data: dict[str, Any], event_id: str, at: float, endpoint_id: int | None,
            endpoints: _Endpoints | None = None) -> None:
    endpoints = endpoints or _Endpoints(db)
    if endpoint_id is not None:  # a test ping or redelivery: that endpoint, whatever its state
        targets = db.execute(
            "SELECT id, events, device_id FROM webhook_endpoints WHERE partner_id = ? "
            "AND deleted_at IS NULL AND id = ?", (partner_id, endpoint_id)).fetchall()
    else:
        targets = [(eid, events, only_device)
                   for eid, events, only_device in endpoints.of(partner_id)
                   if _matches(events.split(","), event_type)
                   and (only_device is None or only_device == device_id)]
    if not targets:
        return
    body = event_body(event_id, event_type, at, data)
    now = time.time()
    status = "held" if endpoints.held(partner_id) else "pending"
    db.executemany(
        "INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, payload, status, "
        "next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(t[0], event_id, event_type, body, status, 0, now) for t in targets])


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
