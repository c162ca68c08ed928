"""The embedded store: SQLite in WAL mode through aiosqlite.

SQLite has one writer, so all writes go through one connection with group commit (the measured
8x gain at full durability, see docs/architecture.md); reads use a second connection. Writes run in
`BEGIN IMMEDIATE` transactions so a read-then-write never meets SQLITE_BUSY half way, and with
`synchronous=FULL` a commit is on disk before the caller answers its client.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

import aiosqlite
import orjson

from gateway.errors import StoreError
from gateway.store.base import (
    Device,
    Idempotency,
    IdempotentReplay,
    Inbound,
    Message,
    MessageEvent,
    Partner,
    SendOutcome,
    User,
)
from gateway.store.sqlite_links import LinkStoreMixin
from gateway.store.sqlite_retention import RetentionStoreMixin
from gateway.store.sqlite_security import SecurityStoreMixin
from gateway.store.sqlite_webhooks import WebhookStoreMixin

T = TypeVar("T")
Job = Callable[[aiosqlite.Connection], Awaitable[T]]
SyncJob = Callable[[sqlite3.Connection], T]


ManyJob = Callable[[sqlite3.Connection, list[Any]], list[Any]]


class _InThread(Generic[T]):
    """A write job that runs on the writer connection's own thread. A run of these in one batch
    costs a single hop between the event loop and SQLite instead of one hop per statement.

    With `many`, adjacent jobs sharing that function run as one call, `many(conn, items)`, in
    one SAVEPOINT (few SQLite calls for the lot: every call releases and retakes the GIL, which
    the busy event loop holds); if it fails, each job runs alone as `fn`, so only the bad one
    fails."""

    __slots__ = ("fn", "item", "many")

    def __init__(self, fn: SyncJob[T], many: ManyJob | None = None, item: Any = None) -> None:
        self.fn = fn
        self.many = many
        self.item = item


Pending = tuple["Job[Any] | _InThread[Any]", "asyncio.Future[Any]"]

RECEIPT_ORDER = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4}


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every bundled migration, in order."""
    found = []
    for entry in resources.files("gateway.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text()))
    return sorted(found)


class SQLiteStore(WebhookStoreMixin, LinkStoreMixin, SecurityStoreMixin, RetentionStoreMixin):
    """Two connections: one writer with group commit, one reader that WAL never blocks.

    Every write is a job; concurrent jobs are committed together (up to `BATCH` per
    transaction), each inside its own SAVEPOINT so one failing job does not undo the others.
    A caller's write returns only after the COMMIT that holds it.
    """

    BATCH = 256

    def __init__(self, path: str | Path, *, target_version: int | None = None) -> None:
        self.path = Path(path)
        self._target = target_version
        self._db: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._pending: list[Pending] = []
        self._draining: asyncio.Future[None] | None = None

    # -- life cycle -------------------------------------------------------------------------

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = await _connect(self.path, "synchronous=FULL")
            await self._migrate()
            self._reader = await _connect(self.path, "query_only=ON")
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._draining is not None:
            await asyncio.shield(self._draining)
        for conn in (self._reader, self._db):
            if conn is not None:
                await conn.close()
        self._db = self._reader = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    @property
    def reader(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreError("store is not open")
        return self._reader

    async def _migrate(self) -> None:
        await self.db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        async with self.db.execute("SELECT version FROM schema_migrations") as cur:
            applied = {int(r[0]) for r in await cur.fetchall()}
        known = migrations()
        unknown = applied - {v for v, _, _ in known}
        if unknown:
            raise StoreError(
                f"database schema v{max(unknown)} is newer than this wagate "
                f"(v{known[-1][0] if known else 0}); upgrade wagate or restore a backup"
            )
        # Every known migration not yet applied, in order: a migration merged from a branch
        # under a lower number than one already applied still runs (forward only, never twice).
        for version, name, sql in known:
            if version in applied or (self._target is not None and version > self._target):
                continue
            await self.db.execute("BEGIN IMMEDIATE")
            try:
                # executescript would COMMIT on its own; run statement by statement instead.
                for statement in _statements(sql):
                    await self.db.execute(statement)
                await self.db.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, time.time()),
                )
            except BaseException:
                await self.db.execute("ROLLBACK")
                raise
            await self.db.execute("COMMIT")

    async def schema_version(self) -> int:
        return await self._version(self.reader if self._reader else self.db)

    async def get_meta(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM meta WHERE key = ?", (key,))
        return str(row[0]) if row else None

    async def set_meta(self, key: str, value: str) -> None:
        await self._exec("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    @staticmethod
    async def _version(conn: aiosqlite.Connection) -> int:
        async with conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as c:
            row = await c.fetchone()
        return int(row[0]) if row else 0

    # -- group commit -----------------------------------------------------------------------

    async def _write(self, job: Job[T]) -> T:
        """Run `job` in the next group commit; return its result once that commit is durable."""
        return await self._submit(job)

    async def _write_in_thread(self, fn: SyncJob[T], many: ManyJob | None = None,
                               item: Any = None) -> T:
        """Like `_write`, for a plain function of the raw `sqlite3` connection, run on the
        writer's thread. The hot paths (enqueue, claim, settle, receipts) use these: a batch of
        them is one thread hop, where an async job costs one hop per statement. With `many`,
        adjacent jobs of the same kind run as one `many(conn, items)` call (see `_InThread`)."""
        return await self._submit(_InThread(fn, many, item))

    async def _submit(self, job: Job[T] | _InThread[T]) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((job, future))
        if self._draining is None:
            # The first writer leads: it drains the queue in a shielded task, so a client
            # that disconnects mid-commit cannot abort other clients' writes.
            self._draining = asyncio.ensure_future(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:self.BATCH], self._pending[self.BATCH:]
                await self._commit(batch)
        finally:
            self._draining = None

    async def _commit(self, batch: list[Pending]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        try:
            begun = committed = False
            i = 0
            while i < len(batch):
                job, future = batch[i]
                if isinstance(job, _InThread):
                    # A run of in-thread jobs (with BEGIN / COMMIT when they open / close the
                    # batch) goes to the writer thread in one hop.
                    j = i + 1
                    while j < len(batch) and isinstance(batch[j][0], _InThread):
                        j += 1
                    run = [(cast(_InThread[Any], b[0]), b[1]) for b in batch[i:j]]
                    committed = j == len(batch)
                    outcomes += await self._on_writer_thread(_run_jobs, run, not begun, committed)
                    begun, i = True, j
                    continue
                if not begun:
                    await self.db.execute("BEGIN IMMEDIATE")
                    begun = True
                await self.db.execute("SAVEPOINT job")
                try:
                    result = await job(self.db)
                except Exception as exc:
                    await self.db.execute("ROLLBACK TO job")
                    outcomes.append((future, None, exc))
                else:
                    outcomes.append((future, result, None))
                await self.db.execute("RELEASE job")
                i += 1
            if not committed:
                await self.db.execute("COMMIT")
        except Exception as exc:
            with contextlib.suppress(Exception):
                await self.db.execute("ROLLBACK")
            failure = StoreError(f"commit failed: {exc}")
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)
            return
        for future, result, error in outcomes:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    async def _on_writer_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Call `fn(conn, *args)` on the writer connection's thread (aiosqlite runs every call
        of a connection on one thread; `_execute` is how its own methods get there)."""
        db = self.db
        run = cast(Callable[..., Awaitable[T]], db._execute)
        return await run(lambda: fn(db._conn, *args))

    async def _exec(self, sql: str, args: Iterable[Any] = ()) -> aiosqlite.Cursor:
        """One statement as its own job."""
        params = tuple(args)

        async def job(db: aiosqlite.Connection) -> aiosqlite.Cursor:
            return await db.execute(sql, params)

        return await self._write(job)

    async def _one(self, sql: str, args: Iterable[Any] = ()) -> aiosqlite.Row | None:
        async with self.reader.execute(sql, tuple(args)) as cur:
            return await cur.fetchone()

    async def _all(self, sql: str, args: Iterable[Any] = ()) -> list[aiosqlite.Row]:
        async with self.reader.execute(sql, tuple(args)) as cur:
            return list(await cur.fetchall())

    # -- partners -----------------------------------------------------------------------------

    async def create_partner(self, name: str, email: str, domain: str, key_hash: str,
                             status: str = "active") -> Partner:
        now = time.time()
        cur = await self._exec(
            "INSERT INTO partners (name, email, domain, key_hash, status, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)", (name, email, domain, key_hash, status, now))
        pid = cur.lastrowid
        assert pid is not None
        return Partner(pid, name, email, domain, status, now)

    async def partner_by_key_hash(self, key_hash: str) -> Partner | None:
        """An active partner by a live API key with every scope (the console's sign-in); the
        API authenticates through `api_key_by_hash`."""
        row = await self._one(
            "SELECT p.* FROM api_keys k JOIN partners p ON p.id = k.partner_id "
            "WHERE k.key_hash = ? AND k.revoked_at IS NULL AND k.scopes = '*' "
            "AND (k.expires_at IS NULL OR k.expires_at > ?) AND p.status = 'active'",
            (key_hash, time.time()))
        return _partner(row) if row else None

    async def partner_by_id(self, partner_id: int) -> Partner | None:
        row = await self._one("SELECT * FROM partners WHERE id = ?", (partner_id,))
        return _partner(row) if row else None

    async def list_partners(self) -> list[Partner]:
        return [_partner(r) for r in await self._all("SELECT * FROM partners ORDER BY id")]

    async def set_partner_key(self, partner_id: int, key_hash: str) -> None:
        await self._exec("UPDATE partners SET key_hash = ? WHERE id = ?",
                             (key_hash, partner_id))

    async def partner_counts(self, partner_id: int) -> dict[str, Any]:
        users = await self._one("SELECT COUNT(*) FROM users WHERE partner_id = ?", (partner_id,))
        by_status = await self._all(
            "SELECT status, COUNT(*) FROM devices WHERE partner_id = ? AND deleted_at IS NULL "
            "GROUP BY status", (partner_id,))
        by_msg = await self._all(
            "SELECT status, COUNT(*) FROM messages WHERE partner_id = ? GROUP BY status",
            (partner_id,))
        devices = {r[0]: r[1] for r in by_status}
        messages = {r[0]: r[1] for r in by_msg}
        return {
            "users": users[0] if users else 0,
            "devices": {"total": sum(devices.values()), **devices},
            "messages": {"total": sum(messages.values()), **messages},
        }

    async def message_counts(self) -> dict[str, int]:
        rows = await self._all("SELECT status, COUNT(*) FROM messages GROUP BY status")
        return {str(r[0]): int(r[1]) for r in rows}

    # -- users --------------------------------------------------------------------------------

    async def create_user(
        self, partner_id: int, label: str, email: str, token_nonce: str, token_hash: str
    ) -> User:
        now = time.time()
        cur = await self._exec(
            "INSERT INTO users (partner_id, label, email, token_nonce, token_hash, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (partner_id, label, email, token_nonce, token_hash, now))
        uid = cur.lastrowid
        assert uid is not None
        return User(uid, partner_id, label, email, token_nonce, now)

    async def list_users(self, partner_id: int) -> list[User]:
        rows = await self._all("SELECT * FROM users WHERE partner_id = ? ORDER BY id",
                               (partner_id,))
        return [_user(r) for r in rows]

    async def user_by_token_hash(self, partner_id: int, token_hash: str) -> User | None:
        row = await self._one("SELECT * FROM users WHERE token_hash = ? AND partner_id = ?",
                              (token_hash, partner_id))
        return _user(row) if row else None

    # -- devices ------------------------------------------------------------------------------

    async def create_device(
        self, partner_id: int, user_id: int, session_id: str, name: str, token_nonce: str,
        token_hash: str,
    ) -> Device:
        now = time.time()
        cur = await self._exec(
            "INSERT INTO devices (partner_id, user_id, session_id, name, token_nonce, "
            "token_hash, status, status_since, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (partner_id, user_id, session_id, name, token_nonce, token_hash, "new", now, now))
        did = cur.lastrowid
        assert did is not None
        return Device(did, partner_id, user_id, session_id, name, token_nonce, "new", False, None,
                      None, now, None, now)

    async def device_by_session(self, partner_id: int, session_id: str) -> Device | None:
        row = await self._one(
            "SELECT * FROM devices WHERE session_id = ? AND partner_id = ? AND deleted_at IS NULL",
            (session_id, partner_id))
        return _device(row) if row else None

    async def device_by_id(self, device_id: int) -> Device | None:
        row = await self._one("SELECT * FROM devices WHERE id = ? AND deleted_at IS NULL",
                              (device_id,))
        return _device(row) if row else None

    async def device_by_token_hash(self, token_hash: str, now: float) -> Device | None:
        row = await self._one(
            "SELECT * FROM devices WHERE deleted_at IS NULL AND (token_hash = ? OR "
            "(prev_token_hash = ? AND prev_token_until > ?))", (token_hash, token_hash, now))
        return _device(row) if row else None

    async def list_devices(self, partner_id: int, user_id: int | None = None) -> list[Device]:
        if user_id is None:
            rows = await self._all(
                "SELECT * FROM devices WHERE partner_id = ? AND deleted_at IS NULL ORDER BY id",
                (partner_id,))
        else:
            rows = await self._all(
                "SELECT * FROM devices WHERE partner_id = ? AND user_id = ? "
                "AND deleted_at IS NULL ORDER BY id", (partner_id, user_id))
        return [_device(r) for r in rows]

    async def all_devices(self) -> list[Device]:
        rows = await self._all("SELECT * FROM devices WHERE deleted_at IS NULL ORDER BY id")
        return [_device(r) for r in rows]

    async def set_device_state(
        self, device_id: int, status: str, *, linked: bool | None = None,
        phone: str | None = None, jid: str | None = None, last_error: str | None = None,
        clear_identity: bool = False,
    ) -> None:
        sets = ["status = ?", "last_error = ?",
                "status_since = CASE WHEN status = ? THEN status_since ELSE ? END"]
        args: list[Any] = [status, last_error, status, time.time()]
        if linked is not None:
            sets.append("linked = ?")
            args.append(int(linked))
        if clear_identity:
            sets.append("phone = NULL, jid = NULL")
        else:
            if phone is not None:
                sets.append("phone = ?")
                args.append(phone)
            if jid is not None:
                sets.append("jid = ?")
                args.append(jid)
        args.append(device_id)
        await self._exec(
            # A deleted device stays deleted whatever its stopping supervisor reports.
            f"UPDATE devices SET {', '.join(sets)} WHERE id = ? AND deleted_at IS NULL",  # noqa: S608
            args)

    async def rotate_device_token(
        self, partner_id: int, device_id: int, token_nonce: str, token_hash: str,
        prev_valid_until: float,
    ) -> None:
        await self._exec(
            "UPDATE devices SET prev_token_hash = token_hash, prev_token_until = ?, "
            "token_nonce = ?, token_hash = ? WHERE id = ? AND partner_id = ? "
            "AND deleted_at IS NULL",
            (prev_valid_until, token_nonce, token_hash, device_id, partner_id))

    async def delete_device(self, partner_id: int, device_id: int) -> None:
        await self._exec(
            "UPDATE devices SET deleted_at = ?, token_hash = NULL, prev_token_hash = NULL, "
            "status = 'deleted', linked = 0 WHERE id = ? AND partner_id = ?",
            (time.time(), device_id, partner_id))

    # -- messages -----------------------------------------------------------------------------

    async def apply_receipt(self, device_id: int, wa_ids: list[str], status: str) -> int:
        """Advance messages to `status`; receipts never move a message backwards."""
        rank = RECEIPT_ORDER[status]
        lower = [s for s, r in RECEIPT_ORDER.items() if r < rank]
        states = ",".join("?" * len(lower))

        # Set-based (receipts arrive grouped, many ids): the events first, for exactly the
        # rows the update will move; `+status` keeps SQLite on the wa_id index.
        in_ids = "wa_id IN (SELECT value FROM json_each(?))"
        where = f"WHERE device_id = ? AND {in_ids} AND +status IN ({states})"

        def job(db: sqlite3.Connection) -> int:
            now = time.time()
            ids = orjson.dumps(wa_ids).decode()
            db.execute("INSERT INTO message_events (message_id, status, detail, at) "  # noqa: S608
                       f"SELECT id, ?, NULL, ? FROM messages {where} ORDER BY rowid",
                       (status, now, device_id, ids, *lower))
            cur = db.execute(f"UPDATE messages SET status = ?, updated_at = ? {where}",  # noqa: S608
                             (status, now, device_id, ids, *lower))
            return cur.rowcount

        return await self._write_in_thread(job)

    async def message_by_id(self, partner_id: int, message_id: str) -> Message | None:
        row = await self._one("SELECT * FROM messages WHERE id = ? AND partner_id = ?",
                              (message_id, partner_id))
        return _message(row) if row else None

    # -- outbox -------------------------------------------------------------------------------

    async def enqueue_message(
        self, message_id: str, partner_id: int, device_id: int, recipient: str, kind: str,
        body: str, expires_at: float | None, idempotency: Idempotency | None = None,
        idempotency_ttl: float = 86400.0, payload: str | None = None,
        media_sha256: str | None = None,
    ) -> Message:
        now = time.time()

        def job(db: sqlite3.Connection) -> None:
            if idempotency is not None:
                row = db.execute(
                    "SELECT fingerprint, message_id FROM idempotency WHERE scope = ? AND key = ? "
                    "AND created_at > ?",
                    (idempotency.scope, idempotency.key, now - idempotency_ttl)).fetchone()
                if row is not None:
                    raise IdempotentReplay(row[1], row[0] == idempotency.fingerprint)
                db.execute(
                    "INSERT OR REPLACE INTO idempotency (scope, key, fingerprint, message_id, "
                    "created_at) VALUES (?, ?, ?, ?, ?)",
                    (idempotency.scope, idempotency.key, idempotency.fingerprint, message_id, now))
            _enqueue_many(db, [values])

        # Without a key, concurrent enqueues go in as one multi-row INSERT (see `_InThread`).
        values = (message_id, partner_id, device_id, recipient, kind, body, now, now, expires_at,
                  payload, media_sha256)
        await self._submit(_InThread(job, None if idempotency else _enqueue_many, values))
        return Message(message_id, partner_id, device_id, recipient, kind, body, "queued", None,
                       None, now, now, 0, expires_at, False, payload)

    async def media_in_use(self, digests: list[str]) -> set[str]:
        if not digests:
            return set()
        rows = await self._all(
            "SELECT DISTINCT media_sha256 FROM messages WHERE media_sha256 IN "
            "(SELECT value FROM json_each(?)) AND status IN ('queued', 'sending')",
            (orjson.dumps(digests).decode(),))
        return {str(r[0]) for r in rows}

    async def recipient_checks(self, device_id: int, phones: list[str],
                               since: float) -> dict[str, bool]:
        rows = await self._all(
            "SELECT phone, on_whatsapp FROM recipient_checks WHERE device_id = ? AND phone IN "
            "(SELECT value FROM json_each(?)) AND checked_at > ?",
            (device_id, orjson.dumps(phones).decode(), since))
        return {str(r[0]): bool(r[1]) for r in rows}

    async def save_recipient_checks(self, device_id: int, answers: dict[str, bool]) -> None:
        now = time.time()

        def job(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT OR REPLACE INTO recipient_checks (device_id, phone, on_whatsapp, "
                "checked_at) VALUES (?, ?, ?, ?)",
                [(device_id, phone, int(yes), now) for phone, yes in answers.items()])

        await self._write_in_thread(job)

    async def next_queued(self, device_id: int, now: float, limit: int) -> list[Message]:
        rows = await self._all(
            "SELECT * FROM messages WHERE device_id = ? AND status = 'queued' "  # noqa: S608
            f"AND next_attempt_at <= ? AND {_NOT_OVERTAKING} ORDER BY rowid LIMIT ?",
            (device_id, now, now, limit))
        return [_message(r) for r in rows]

    async def claim_queued(self, device_id: int, now: float, limit: int) -> list[Message]:
        """Up to `limit` due messages, oldest first, moved queued -> sending in one commit.

        Set-based, so a batch costs a handful of SQLite calls whatever its size: the rows come
        back as one JSON array (`next_attempt_at` is 0 until a message is deferred, then an epoch
        time; two index-ordered reads avoid sorting the whole backlog)."""
        def job(db: sqlite3.Connection) -> list[Message]:
            rows = _claimable(db, "next_attempt_at = 0", (device_id, now, limit))
            deferred = _claimable(db, "next_attempt_at > 0 AND next_attempt_at <= ?",
                                  (device_id, now, now, limit))
            if deferred:
                rows = sorted(rows + deferred)[:limit]
            if not rows:
                return []
            stamp = time.time()
            rowids = orjson.dumps([r[0] for r in rows]).decode()
            db.execute("INSERT INTO message_events (message_id, status, detail, at) "
                       "SELECT id, 'sending', NULL, ? FROM messages "
                       "WHERE rowid IN (SELECT value FROM json_each(?)) ORDER BY rowid",
                       (stamp, rowids))
            db.execute("UPDATE messages SET status = 'sending', attempts = attempts + 1, "
                       "updated_at = ? WHERE rowid IN (SELECT value FROM json_each(?))",
                       (stamp, rowids))
            return [Message(r[1], r[2], r[3], r[4], r[5], r[6], "sending", r[7], r[8], r[9],
                            stamp, r[10] + 1, r[11], bool(r[12]), r[13]) for r in rows]

        return await self._write_in_thread(job)

    async def settle_sends(self, outcomes: list[SendOutcome]) -> None:
        """Record what a batch of hand-offs to the driver came to, in one commit."""
        sent = orjson.dumps([(o.message_id, o.wa_id) for o in outcomes
                             if o.status == "sent"]).decode()
        others = [o for o in outcomes if o.status != "sent"]

        def job(db: sqlite3.Connection) -> None:
            now = time.time()
            # sending -> sent for the whole batch in two statements: the events for exactly
            # the rows the update moves, then the update.
            db.execute("INSERT INTO message_events (message_id, status, detail, at) "
                       "SELECT m.id, 'sent', NULL, ? FROM json_each(?) j "
                       "JOIN messages m ON m.id = json_extract(j.value, '$[0]') "
                       "WHERE m.status IN ('queued', 'sending') ORDER BY j.key", (now, sent))
            db.execute("UPDATE messages SET status = 'sent', updated_at = ?, "
                       "wa_id = json_extract(j.value, '$[1]') FROM json_each(?) AS j "
                       "WHERE messages.id = json_extract(j.value, '$[0]') "
                       "AND messages.status IN ('queued', 'sending')", (now, sent))
            for o in others:
                if o.status == "retry":
                    _to_retry(db, o.message_id, o.retry_at or now, o.error or "", now)
                else:
                    _to_status(db, o.message_id, "failed", o.error, ("queued", "sending"), now)

        await self._write_in_thread(job)

    async def mark_sending(self, message_id: str) -> bool:
        def job(db: sqlite3.Connection) -> bool:
            now = time.time()
            cur = db.execute(
                "UPDATE messages SET status = 'sending', attempts = attempts + 1, updated_at = ? "
                "WHERE id = ? AND status = 'queued'", (now, message_id))
            if cur.rowcount:
                _events(db, [(message_id, "sending", None, now)])
            return bool(cur.rowcount)

        return await self._write_in_thread(job)

    async def mark_sent(self, message_id: str, wa_id: str) -> None:
        await self._transition(message_id, "sent", None, ("queued", "sending"), wa_id=wa_id)

    async def retry_later(self, message_id: str, at: float, error: str) -> None:
        await self._write_in_thread(lambda db: _to_retry(db, message_id, at, error, time.time()))

    async def mark_failed(self, message_id: str, error: str) -> None:
        await self._transition(message_id, "failed", error, ("queued", "sending"))

    async def _transition(self, message_id: str, status: str, error: str | None,
                          allowed: tuple[str, ...], *, wa_id: str | None = None) -> bool:
        return await self._write_in_thread(
            lambda db: _to_status(db, message_id, status, error, allowed, time.time(), wa_id))

    async def requeue_in_doubt(self) -> int:
        async def job(db: aiosqlite.Connection) -> int:
            now = time.time()
            cur = await db.execute(
                "UPDATE messages SET status = 'queued', in_doubt = 1, updated_at = ? "
                "WHERE status = 'sending' RETURNING id", (now,))
            ids = [r[0] for r in await cur.fetchall()]
            for mid in ids:
                await _event(db, mid, "queued", "in doubt after a restart; sent again", now)
            return len(ids)

        return await self._write(job)

    async def expire_due(self, now: float) -> list[Message]:
        return await self._bulk_final(
            "status = 'queued' AND expires_at IS NOT NULL AND expires_at <= ?", (now,),
            "expired", "not sent before the queue TTL")

    async def fail_queued(self, device_id: int, reason: str) -> list[Message]:
        return await self._bulk_final("device_id = ? AND status IN ('queued', 'sending')",
                                      (device_id,), "failed", reason)

    async def _bulk_final(self, where: str, args: tuple[Any, ...], status: str,
                          reason: str) -> list[Message]:
        async def job(db: aiosqlite.Connection) -> list[Message]:
            now = time.time()
            cur = await db.execute(
                f"UPDATE messages SET status = ?, error = ?, updated_at = ? "  # noqa: S608
                f"WHERE {where} RETURNING *", (status, reason, now, *args))
            rows = [_message(r) for r in await cur.fetchall()]
            for m in rows:
                await _event(db, m.id, status, reason, now)
            return rows

        return await self._write(job)

    async def message_events(self, message_id: str) -> list[MessageEvent]:
        rows = await self._all(
            "SELECT status, detail, at FROM message_events WHERE message_id = ? ORDER BY id",
            (message_id,))
        return [MessageEvent(r[0], r[1], r[2]) for r in rows]

    async def list_messages(
        self, partner_id: int, device_id: int, *, status: str | None, recipient: str | None,
        since: float | None, until: float | None, before: str | None, limit: int,
    ) -> list[Message]:
        where = ["partner_id = ?", "device_id = ?"]
        args: list[Any] = [partner_id, device_id]
        for clause, value in (("status = ?", status), ("recipient = ?", recipient),
                              ("created_at >= ?", since), ("created_at < ?", until)):
            if value is not None:
                where.append(clause)
                args.append(value)
        if before is not None:
            where.append("rowid < (SELECT rowid FROM messages WHERE id = ? AND partner_id = ?)")
            args += [before, partner_id]
        rows = await self._all(
            f"SELECT * FROM messages WHERE {' AND '.join(where)} "  # noqa: S608
            "ORDER BY rowid DESC LIMIT ?", (*args, limit))
        return [_message(r) for r in rows]

    async def add_inbound(
        self, device_id: int, wa_id: str, sender: str, chat: str, kind: str, body: str,
        is_group: bool,
    ) -> None:
        await self._exec(
            "INSERT OR IGNORE INTO inbound (device_id, wa_id, sender, chat, kind, body, "
            "is_group, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (device_id, wa_id, sender, chat, kind, body, int(is_group), time.time()))

    async def list_inbound(self, partner_id: int, device_id: int, limit: int) -> list[Inbound]:
        rows = await self._all(
            "SELECT i.* FROM inbound i JOIN devices d ON d.id = i.device_id "
            "WHERE i.device_id = ? AND d.partner_id = ? ORDER BY i.id DESC LIMIT ?",
            (device_id, partner_id, limit))
        return [Inbound(r["id"], r["device_id"], r["wa_id"], r["sender"], r["chat"], r["kind"],
                        r["body"], bool(r["is_group"]), r["received_at"]) for r in rows]


async def _connect(path: Path, *pragmas: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    for pragma in ("journal_mode=WAL", "foreign_keys=ON", "busy_timeout=5000", *pragmas):
        await conn.execute(f"PRAGMA {pragma}")
    return conn


def _run_jobs(conn: sqlite3.Connection, jobs: list[tuple[_InThread[Any], asyncio.Future[Any]]],
              begin: bool, commit: bool,
              ) -> list[tuple[asyncio.Future[Any], Any, BaseException | None]]:
    """On the writer thread: each job (or run of `many` jobs) in its own SAVEPOINT, as `_commit`
    does for async jobs. Futures are only carried through; they are resolved on the loop."""
    outcomes: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
    if begin:
        conn.execute("BEGIN IMMEDIATE")
    i = 0
    while i < len(jobs):
        job = jobs[i][0]
        j = i + 1
        if job.many is not None:
            while j < len(jobs) and jobs[j][0].many is job.many:
                j += 1
        if j - i > 1 and job.many is not None:
            conn.execute("SAVEPOINT job")
            try:
                results = job.many(conn, [jb.item for jb, _ in jobs[i:j]])
            except Exception:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                j = i + 1  # one by one, below
            else:
                conn.execute("RELEASE job")
                outcomes += [(f, r, None) for (_, f), r in zip(jobs[i:j], results, strict=True)]
                i = j
                continue
        future = jobs[i][1]
        conn.execute("SAVEPOINT job")
        try:
            result = job.fn(conn)
        except Exception as exc:
            conn.execute("ROLLBACK TO job")
            outcomes.append((future, None, exc))
        else:
            outcomes.append((future, result, None))
        conn.execute("RELEASE job")
        i = j
    if commit:
        conn.execute("COMMIT")
    return outcomes


def _statements(sql: str) -> list[str]:
    """A migration's statements; a trigger's body keeps its inner semicolons."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    out: list[str] = []
    buf = ""
    for part in "\n".join(lines).split(";"):
        buf += part + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip() != ";":
                out.append(buf.strip()[:-1].strip())
            buf = ""
    if buf.strip(" \n;"):
        out.append(buf.strip(" \n;"))
    return out


def _partner(r: aiosqlite.Row) -> Partner:
    if "api_rate_per_minute" not in r.keys():  # noqa: SIM118 - a schema before 0008 (tests)
        return Partner(r["id"], r["name"], r["email"], r["domain"], r["status"], r["created_at"])
    return Partner(r["id"], r["name"], r["email"], r["domain"], r["status"], r["created_at"],
                   r["status_reason"], r["api_rate_per_minute"], r["send_rate_per_minute"])


def _user(r: aiosqlite.Row) -> User:
    return User(r["id"], r["partner_id"], r["label"], r["email"], r["token_nonce"],
                r["created_at"])


def _device(r: aiosqlite.Row) -> Device:
    return Device(r["id"], r["partner_id"], r["user_id"], r["session_id"], r["name"],
                  r["token_nonce"], r["status"], bool(r["linked"]), r["phone"], r["jid"],
                  r["status_since"], r["last_error"], r["created_at"], r["prev_token_until"])


def _message(r: aiosqlite.Row) -> Message:
    keys = r.keys()
    return Message(r["id"], r["partner_id"], r["device_id"], r["recipient"], r["kind"], r["body"],
                   r["status"], r["wa_id"], r["error"], r["created_at"], r["updated_at"],
                   r["attempts"] if "attempts" in keys else 0,
                   r["expires_at"] if "expires_at" in keys else None,
                   bool(r["in_doubt"]) if "in_doubt" in keys else False,
                   r["payload"] if "payload" in keys else None)


def _enqueue_many(db: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> list[None]:
    """Queued messages and their `queued` events, a few multi-row INSERTs for the lot."""
    for start in range(0, len(rows), 256):  # 256 x 11 bound values, under SQLite's limit
        chunk = rows[start:start + 256]
        values = ", ".join(["(?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)"] * len(chunk))
        db.execute("INSERT INTO messages (id, partner_id, device_id, recipient, kind, body, "  # noqa: S608
                   "status, created_at, updated_at, expires_at, payload, media_sha256) "
                   f"VALUES {values}",
                   [v for r in chunk for v in r])
        events = ", ".join(["(?, 'queued', NULL, ?)"] * len(chunk))
        db.execute("INSERT INTO message_events (message_id, status, detail, at) "  # noqa: S608
                   f"VALUES {events}", [v for r in chunk for v in (r[0], r[6])])
    return [None] * len(rows)


# FIFO per recipient: a message waits while an older one to the same recipient waits for its
# retry (bound: now). Found through the outbox index, whose range of deferred rows is usually
# empty, so it costs an index probe per candidate.
_NOT_OVERTAKING = (
    "NOT EXISTS (SELECT 1 FROM messages AS older WHERE older.device_id = messages.device_id "
    "AND older.status = 'queued' AND older.next_attempt_at > ? "
    "AND older.recipient = messages.recipient AND older.rowid < messages.rowid)"
)


def _claimable(db: sqlite3.Connection, due: str, args: tuple[Any, ...]) -> list[list[Any]]:
    """Queued messages of one device, oldest first, as one JSON array in one SQLite call.
    `args`: the device id, `due`'s values, now, the limit."""
    row = db.execute(
        "SELECT json_group_array(json_array(rowid, id, partner_id, device_id, recipient, "  # noqa: S608
        "kind, body, wa_id, error, created_at, attempts, expires_at, in_doubt, payload)) FROM ("
        f"SELECT rowid, * FROM messages WHERE device_id = ? AND status = 'queued' AND {due} "
        f"AND {_NOT_OVERTAKING} ORDER BY rowid LIMIT ?)", args).fetchone()
    rows: list[list[Any]] = orjson.loads(row[0]) if row and row[0] else []
    return rows


def _to_status(db: sqlite3.Connection, message_id: str, status: str, error: str | None,
               allowed: tuple[str, ...], now: float, wa_id: str | None = None) -> bool:
    marks = ",".join("?" * len(allowed))
    cur = db.execute(
        f"UPDATE messages SET status = ?, error = COALESCE(?, error), "  # noqa: S608
        f"wa_id = COALESCE(?, wa_id), updated_at = ? WHERE id = ? AND status IN ({marks})",
        (status, error, wa_id, now, message_id, *allowed))
    if cur.rowcount:
        _events(db, [(message_id, status, error, now)])
    return bool(cur.rowcount)


def _to_retry(db: sqlite3.Connection, message_id: str, at: float, error: str,
              now: float) -> None:
    cur = db.execute(
        "UPDATE messages SET status = 'queued', next_attempt_at = ?, error = ?, updated_at = ? "
        "WHERE id = ? AND status = 'sending'", (at, error, now, message_id))
    if cur.rowcount:
        _events(db, [(message_id, "retry", error, now)])


def _events(db: sqlite3.Connection,
            events: list[tuple[str, str, str | None, float]]) -> None:
    """(message_id, status, detail, at) rows for the timeline, from an in-thread job."""
    if events:
        db.executemany("INSERT INTO message_events (message_id, status, detail, at) "
                       "VALUES (?, ?, ?, ?)", events)


async def _event(db: aiosqlite.Connection, message_id: str, status: str, detail: str | None,
                 at: float) -> None:
    await db.execute("INSERT INTO message_events (message_id, status, detail, at) "
                     "VALUES (?, ?, ?, ?)", (message_id, status, detail, at))
