"""Link-page tokens for the SQLite store: create, look up (live ones only), revoke."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite

from gateway.store.base import LinkToken

KEEP_DEAD = 7 * 86400.0  # expired or revoked rows are deleted this long after they died


class LinkStoreMixin:
    """Mixed into SQLiteStore, which provides `_write`, `_exec`, `_one` and `_all`."""

    _write: Callable[[Callable[[aiosqlite.Connection], Awaitable[Any]]], Awaitable[Any]]
    _exec: Callable[..., Awaitable[aiosqlite.Cursor]]
    _one: Callable[..., Awaitable[aiosqlite.Row | None]]
    _all: Callable[..., Awaitable[list[aiosqlite.Row]]]

    async def create_link(self, partner_id: int, device_id: int, token_hash: str,
                          expires_at: float) -> LinkToken:
        now = time.time()

        async def job(db: aiosqlite.Connection) -> int:
            await db.execute(
                "DELETE FROM link_tokens WHERE expires_at < ? OR revoked_at < ?",
                (now - KEEP_DEAD, now - KEEP_DEAD))
            cur = await db.execute(
                "INSERT INTO link_tokens (partner_id, device_id, token_hash, created_at, "
                "expires_at) VALUES (?, ?, ?, ?, ?)",
                (partner_id, device_id, token_hash, now, expires_at))
            assert cur.lastrowid is not None
            return cur.lastrowid

        link_id: int = await self._write(job)
        return LinkToken(link_id, partner_id, device_id, now, expires_at, None)

    async def link_by_token_hash(self, token_hash: str, now: float) -> LinkToken | None:
        row = await self._one(
            "SELECT l.* FROM link_tokens l JOIN devices d ON d.id = l.device_id "
            "AND d.partner_id = l.partner_id WHERE l.token_hash = ? AND l.revoked_at IS NULL "
            "AND l.expires_at > ? AND d.deleted_at IS NULL", (token_hash, now))
        if row is None:
            return None
        return LinkToken(row["id"], row["partner_id"], row["device_id"], row["created_at"],
                         row["expires_at"], row["revoked_at"])

    async def revoke_links(self, partner_id: int, device_id: int) -> int:
        cur = await self._exec(
            "UPDATE link_tokens SET revoked_at = ? WHERE partner_id = ? AND device_id = ? "
            "AND revoked_at IS NULL AND expires_at > ?",
            (time.time(), partner_id, device_id, time.time()))
        return int(cur.rowcount)
