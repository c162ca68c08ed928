"""Scoped API keys, partner status and limits, and the audit log for the SQLite store."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiosqlite
import orjson

from gateway.store.base import ApiKey, AuditEntry, Partner
from gateway.store.sqlite_webhooks import hold_webhooks

_KEY_COLUMNS = ("id", "public_id", "partner_id", "name", "hint", "scopes", "is_primary",
                "created_at", "expires_at", "last_used_at", "revoked_at")
_PARTNER_COLUMNS = ("id", "name", "email", "domain", "status", "created_at", "status_reason",
                    "api_rate_per_minute", "send_rate_per_minute")


def _scopes(text: str) -> tuple[str, ...]:
    return ("*",) if text == "*" else tuple(text.split())


def _key(r: aiosqlite.Row, prefix: str = "") -> ApiKey:
    return ApiKey(r[prefix + "id"], r[prefix + "public_id"], r[prefix + "partner_id"],
                  r[prefix + "name"], r[prefix + "hint"], _scopes(r[prefix + "scopes"]),
                  bool(r[prefix + "is_primary"]), r[prefix + "created_at"],
                  r[prefix + "expires_at"], r[prefix + "last_used_at"], r[prefix + "revoked_at"])


class SecurityStoreMixin:
    """Mixed into SQLiteStore, which provides `_write`, `_write_in_thread`, `_exec`, `_one` and
    `_all`."""

    _write: Callable[[Callable[[aiosqlite.Connection], Awaitable[Any]]], Awaitable[Any]]
    _write_in_thread: Callable[..., Awaitable[Any]]
    _exec: Callable[..., Awaitable[aiosqlite.Cursor]]
    _one: Callable[..., Awaitable[aiosqlite.Row | None]]
    _all: Callable[..., Awaitable[list[aiosqlite.Row]]]

    # -- API keys ---------------------------------------------------------------------------

    async def api_key_by_hash(self, key_hash: str) -> tuple[ApiKey, Partner] | None:
        columns = ", ".join([f"k.{c} AS k_{c}" for c in _KEY_COLUMNS]
                            + [f"p.{c} AS p_{c}" for c in _PARTNER_COLUMNS])
        row = await self._one(
            f"SELECT {columns} FROM api_keys k JOIN partners p ON p.id = k.partner_id "  # noqa: S608
            "WHERE k.key_hash = ? AND k.revoked_at IS NULL", (key_hash,))
        if row is None:
            return None
        partner = Partner(*(row[f"p_{c}"] for c in _PARTNER_COLUMNS))
        return _key(row, "k_"), partner

    async def create_api_key(
        self, partner_id: int, public_id: str, name: str, key_hash: str, hint: str,
        scopes: tuple[str, ...], expires_at: float | None, max_keys: int,
    ) -> ApiKey | None:
        now = time.time()
        stored = "*" if scopes == ("*",) else " ".join(scopes)

        async def job(db: aiosqlite.Connection) -> int | None:
            async with db.execute(
                    "SELECT COUNT(*) FROM api_keys WHERE partner_id = ? AND revoked_at IS NULL "
                    "AND (expires_at IS NULL OR expires_at > ?)", (partner_id, now)) as cur:
                row = await cur.fetchone()
            if row is not None and row[0] >= max_keys:
                return None
            cur = await db.execute(
                "INSERT INTO api_keys (public_id, partner_id, name, key_hash, hint, scopes, "
                "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (public_id, partner_id, name, key_hash, hint, stored, now, expires_at))
            return cur.lastrowid

        key_id: int | None = await self._write(job)
        if key_id is None:
            return None
        return ApiKey(key_id, public_id, partner_id, name, hint, scopes, False, now, expires_at,
                      None)

    async def list_api_keys(self, partner_id: int) -> list[ApiKey]:
        rows = await self._all("SELECT * FROM api_keys WHERE partner_id = ? AND revoked_at IS "
                               "NULL ORDER BY id", (partner_id,))
        return [_key(r) for r in rows]

    async def revoke_api_key(self, partner_id: int, public_id: str) -> ApiKey | None:
        now = time.time()

        async def job(db: aiosqlite.Connection) -> aiosqlite.Row | None:
            async with db.execute(
                    "SELECT * FROM api_keys WHERE partner_id = ? AND public_id = ? "
                    "AND revoked_at IS NULL", (partner_id, public_id)) as cur:
                row = await cur.fetchone()
            if row is not None:
                await db.execute("UPDATE api_keys SET revoked_at = ? WHERE id = ?",
                                 (now, row["id"]))
            return row

        row = await self._write(job)
        if row is None:
            return None
        key = _key(row)
        return ApiKey(**{**key.__dict__, "revoked_at": now})

    async def touch_api_key(self, key_id: int, at: float) -> None:
        await self._exec("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (at, key_id))

    async def set_key_hint(self, key_hash: str, hint: str) -> None:
        await self._exec("UPDATE api_keys SET hint = ? WHERE key_hash = ?", (hint, key_hash))

    # -- partner status and limits -----------------------------------------------------------

    async def set_partner_status(self, partner_id: int, status: str,
                                 reason: str | None) -> None:
        def job(db: sqlite3.Connection) -> None:
            db.execute("UPDATE partners SET status = ?, status_reason = ?, "
                       "status_changed_at = ? WHERE id = ?",
                       (status, reason, time.time(), partner_id))
            hold_webhooks(db, partner_id, held=status == "suspended")

        await self._write_in_thread(job)

    async def set_partner_limits(self, partner_id: int, api_rate_per_minute: int | None,
                                 send_rate_per_minute: int | None) -> None:
        await self._exec("UPDATE partners SET api_rate_per_minute = ?, send_rate_per_minute = ? "
                         "WHERE id = ?", (api_rate_per_minute, send_rate_per_minute, partner_id))

    async def partner_ids_with_status(self, status: str) -> list[int]:
        rows = await self._all("SELECT id FROM partners WHERE status = ?", (status,))
        return [int(r[0]) for r in rows]

    # -- audit log ---------------------------------------------------------------------------

    async def add_audit(
        self, partner_id: int | None, actor: str, actor_id: str | None, actor_name: str | None,
        action: str, target: str | None, ip: str | None, detail: dict[str, Any],
    ) -> None:
        await self._exec(
            "INSERT INTO audit_log (at, partner_id, actor, actor_id, actor_name, action, target, "
            "ip, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (time.time(), partner_id, actor, actor_id, actor_name, action, target, ip,
             orjson.dumps(detail).decode()))

    async def list_audit(self, partner_id: int | None, limit: int,
                         before: int | None = None) -> list[AuditEntry]:
        where, args = [], []
        if partner_id is not None:
            where.append("partner_id = ?")
            args.append(partner_id)
        if before is not None:
            where.append("id < ?")
            args.append(before)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        rows = await self._all(f"SELECT * FROM audit_log {clause}ORDER BY id DESC LIMIT ?",  # noqa: S608
                               (*args, limit))
        return [AuditEntry(r["id"], r["at"], r["partner_id"], r["actor"], r["actor_id"],
                           r["actor_name"], r["action"], r["target"], r["ip"],
                           orjson.loads(r["detail"])) for r in rows]
