"""Retention for the SQLite store: old messages, inbound, webhook logs and caches go.

Rows are found by rowid, which grows with time: the scan stops at the first row young enough to
keep, so a purge costs the rows it deletes, not the table's size, and needs no extra index on
the hot insert path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from gateway.store.base import Retention

_OLD_ROWS = (  # the oldest `limit` rows before the first row at or after the cut-off
    "SELECT rowid, {key} FROM {table} WHERE rowid < COALESCE("
    "(SELECT rowid FROM {table} WHERE {at} >= ? ORDER BY rowid LIMIT 1), 1 << 62) "
    "AND {keep} ORDER BY rowid LIMIT ?"
)


class RetentionStoreMixin:
    """Mixed into SQLiteStore, which provides `_write_in_thread`."""

    _write_in_thread: Callable[..., Awaitable[Any]]

    async def purge(self, retention: Retention, limit: int) -> dict[str, int]:
        def job(db: sqlite3.Connection) -> dict[str, int]:
            done: dict[str, int] = {}
            if retention.messages_before is not None:
                ids = _old(db, "messages", "id", "created_at", "status NOT IN ('queued', "
                           "'sending')", retention.messages_before, limit)
                db.execute("DELETE FROM message_events WHERE message_id IN "
                           "(SELECT value FROM json_each(?))", (ids,))
                done["messages"] = db.execute(
                    "DELETE FROM messages WHERE id IN (SELECT value FROM json_each(?))",
                    (ids,)).rowcount
            if retention.inbound_before is not None:
                ids = _old(db, "inbound", "id", "received_at", "1", retention.inbound_before,
                           limit)
                done["inbound"] = db.execute(
                    "DELETE FROM inbound WHERE id IN (SELECT value FROM json_each(?))",
                    (ids,)).rowcount
            if retention.webhook_log_before is not None:
                ids = _old(db, "webhook_deliveries", "id", "created_at",
                           "status IN ('delivered', 'failed')", retention.webhook_log_before,
                           limit)
                db.execute("DELETE FROM webhook_attempts WHERE delivery_id IN "
                           "(SELECT value FROM json_each(?))", (ids,))
                done["webhook_deliveries"] = db.execute(
                    "DELETE FROM webhook_deliveries WHERE id IN (SELECT value FROM json_each(?))",
                    (ids,)).rowcount
            done["idempotency"] = db.execute(
                "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency "
                "WHERE created_at < ? LIMIT ?)", (retention.idempotency_before, limit)).rowcount
            done["recipient_checks"] = db.execute(
                "DELETE FROM recipient_checks WHERE rowid IN (SELECT rowid FROM "
                "recipient_checks WHERE checked_at < ? LIMIT ?)",
                (retention.recipient_checks_before, limit)).rowcount
            return done

        result: dict[str, int] = await self._write_in_thread(job)
        return result


def _old(db: sqlite3.Connection, table: str, key: str, at: str, keep: str, before: float,
         limit: int) -> str:
    """The keys of the oldest expired rows, as a JSON array for `json_each`."""
    sql = _OLD_ROWS.format(table=table, key=key, at=at, keep=keep)
    return orjson.dumps([r[1] for r in db.execute(sql, (before, limit))]).decode()
