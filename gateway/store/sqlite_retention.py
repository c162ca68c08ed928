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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Kind:
    """A table walked by rowid: its time column, which of its old rows may go, and the rows of
    another table that go with them (deleted first: foreign keys)."""

    table: str
    at: str
    deletable: str
    dependent: tuple[str, str] | None  # (table, column holding this table's id)
    cutoff: Callable[[Retention], float | None]


_KINDS = (
    _Kind("messages", "created_at",
          f"status NOT IN ('queued', 'sending') AND {_KEEP_NEWEST_EVENT}",
          ("message_events", "message_id"), lambda r: r.messages_before),
    _Kind("inbound", "received_at", "1", None, lambda r: r.inbound_before),
    _Kind("webhook_deliveries", "created_at",
          f"status IN ('delivered', 'failed') AND {_KEEP_NEWEST_ATTEMPT}",
          ("webhook_attempts", "delivery_id"), lambda r: r.webhook_log_before),
)
# Indexed by time, and no id of theirs is handed out or read in order: deleted by time alone.
_CACHES: tuple[tuple[str, str, Callable[[Retention], float]], ...] = (
    ("idempotency", "created_at", lambda r: r.idempotency_before),
    ("recipient_checks", "checked_at", lambda r: r.recipient_checks_before))


class RetentionStoreMixin:
    """Mixed into SQLiteStore, which provides `_write_in_thread`."""

    _write_in_thread: Callable[..., Awaitable[Any]]

    async def purge(self, retention: Retention, limit: int,
                    after: dict[str, int]) -> dict[str, int]:
        def job(db: sqlite3.Connection) -> dict[str, int]:
            done: dict[str, int] = {}
            for kind in _KINDS:
                ids = _old(db, kind.table, kind.at, kind.deletable, kind.cutoff(retention),
                           limit, after)
                if kind.dependent is not None:
                    table, column = kind.dependent
                    db.execute(f"DELETE FROM {table} WHERE {column} IN "  # noqa: S608
                               "(SELECT value FROM json_each(?))", (ids,))
                done[kind.table] = db.execute(
                    f"DELETE FROM {kind.table} WHERE id IN "  # noqa: S608
                    "(SELECT value FROM json_each(?))", (ids,)).rowcount
            for table, at, cutoff in _CACHES:
                done[table] = db.execute(
                    f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "  # noqa: S608
                    f"WHERE {at} < ? LIMIT ?)", (cutoff(retention), limit)).rowcount
                after[table] = DONE if done[table] < limit else 0
            return done

        result: dict[str, int] = await self._write_in_thread(job)
        return result


def _old(db: sqlite3.Connection, table: str, at: str, deletable: str, before: float | None,
         limit: int, after: dict[str, int]) -> str:
    """The keys of the next expired, deletable rows of `table` (a JSON array for `json_each`),
    moving `after[table]` past every row looked at, or to DONE."""
    start = after.get(table, 0)
    if before is None or start == DONE:
        after[table] = DONE
        return "[]"
    rows = db.execute(
        f"SELECT rowid, id, {at}, ({deletable}) AND rowid < "  # noqa: S608
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
