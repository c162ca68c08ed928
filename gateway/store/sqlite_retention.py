"""Retention for the SQLite store: old messages, inbound, webhook logs and caches go.

A pass walks each table in rowid order (rowids grow with time) from where its last batch
stopped, up to the first row young enough to keep: each row is looked at once, so a pass costs
the rows it deletes, not the table's size, and needs no extra index on the hot insert path.

The newest row of a table is never deleted, nor the message or delivery owning the newest event
or attempt: SQLite gives a new row the highest rowid + 1, so deleting the top rows would hand
their ids out again — and the webhook pump reads `message_events` by id, and delivery and event
ids are public.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from gateway.store.base import Retention

DONE = -1  # a table's pass reached rows young enough to keep (or its retention is off)

_KEEP_NEWEST_EVENT = (
    "id IS NOT (SELECT message_id FROM message_events "
    "WHERE id = (SELECT MAX(id) FROM message_events))"
)
_KEEP_NEWEST_ATTEMPT = (
    "id IS NOT (SELECT delivery_id FROM webhook_attempts "
    "WHERE id = (SELECT MAX(id) FROM webhook_attempts))"
)


class RetentionStoreMixin:
    """Mixed into SQLiteStore, which provides `_write_in_thread`."""

    _write_in_thread: Callable[..., Awaitable[Any]]

    async def purge(self, retention: Retention, limit: int,
                    after: dict[str, int]) -> dict[str, int]:
        def job(db: sqlite3.Connection) -> dict[str, int]:
            done: dict[str, int] = {}
            ids = _old(db, "messages", "id", "created_at",
                       f"status NOT IN ('queued', 'sending') AND {_KEEP_NEWEST_EVENT}",
                       retention.messages_before, limit, after)
            db.execute("DELETE FROM message_events WHERE message_id IN "
                       "(SELECT value FROM json_each(?))", (ids,))
            done["messages"] = db.execute(
                "DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?))",
                (ids,)).rowcount
            ids = _old(db, "inbound", "id", "received_at", "1", retention.inbound_before, limit,
                       after)
            done["inbound"] = db.execute(
                "DELETE FROM inbound WHERE id IN (SELECT value FROM json_each(?))",
                (ids,)).rowcount
            ids = _old(db, "webhook_deliveries", "id", "created_at",
                       f"status IN ('delivered', 'failed') AND {_KEEP_NEWEST_ATTEMPT}",
                       retention.webhook_log_before, limit, after)
            db.execute("DELETE FROM webhook_attempts WHERE delivery_id IN "
                       "(SELECT value FROM json_each(?))", (ids,))
            done["webhook_deliveries"] = db.execute(
                "DELETE FROM webhook_deliveries WHERE id IN (SELECT value FROM json_each(?))",
                (ids,)).rowcount
            # Indexed by time, and no id of theirs is handed out or read in order.
            done["idempotency"] = db.execute(
                "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency "
                "WHERE created_at < ? LIMIT ?)", (retention.idempotency_before, limit)).rowcount
            after["idempotency"] = DONE if done["idempotency"] < limit else 0
            done["recipient_checks"] = db.execute(
                "DELETE FROM recipient_checks WHERE rowid IN (SELECT rowid FROM "
                "recipient_checks WHERE checked_at < ? LIMIT ?)",
                (retention.recipient_checks_before, limit)).rowcount
            after["recipient_checks"] = DONE if done["recipient_checks"] < limit else 0
            return done

        result: dict[str, int] = await self._write_in_thread(job)
        return result


def _old(db: sqlite3.Connection, table: str, key: str, at: str, deletable: str,
         before: float | None, limit: int, after: dict[str, int]) -> str:
    """The keys of the next expired, deletable rows of `table` (a JSON array for `json_each`),
    moving `after[table]` past every row looked at, or to DONE."""
    start = after.get(table, 0)
    if before is None or start == DONE:
        after[table] = DONE
        return "[]"
    rows = db.execute(
        f"SELECT rowid, {key}, {at}, ({deletable}) AND rowid < "  # noqa: S608
        f"(SELECT MAX(rowid) FROM {table}) FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?",
        (start, limit)).fetchall()
    keys = []
    for rowid, k, when, ok in rows:
        if when >= before:
            after[table] = DONE
            break
        if ok:
            keys.append(k)
        after[table] = rowid
    else:
        if len(rows) < limit:
            after[table] = DONE
    return orjson.dumps(keys).decode()
