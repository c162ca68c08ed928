"""The SQLite store: migrations, durability settings, tenant scoping, receipt ordering,
retention."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway import housekeeping
from gateway.config import load_config
from gateway.errors import StoreError
from gateway.housekeeping import DAY
from gateway.store.base import Device, Idempotency, Partner, WebhookAttempt
from gateway.store.sqlite import SQLiteStore, migrations


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "w.db")
    await opened.open()
    yield opened
    await opened.close()


async def _seeded(store: SQLiteStore) -> tuple[Partner, Device]:
    """A partner with one user and one device."""
    p = await store.create_partner("A", "a@x", "", "ha")
    u = await store.create_user(p.id, "u", "", "n", "uh")
    return p, await store.create_device(p.id, u.id, "wa_a", "d", "n", "dh")


async def test_migrates_an_empty_database(store: SQLiteStore) -> None:
    assert await store.schema_version() == migrations()[-1][0]
    async with store.db.execute("PRAGMA journal_mode") as cur:
        assert (await cur.fetchone())[0] == "wal"  # type: ignore[index]
    async with store.db.execute("PRAGMA synchronous") as cur:
        assert (await cur.fetchone())[0] == 2  # type: ignore[index]  # FULL


async def test_migrates_from_the_previous_version_keeping_data(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    previous = migrations()[-2][0]
    old = SQLiteStore(path, target_version=previous)
    await old.open()
    partner = await old.create_partner("A", "a@x", "", "h" * 64)
    user = await old.create_user(partner.id, "u", "", "n1", "uh")
    await old.create_device(partner.id, user.id, "wa_1", "phone", "n2", "dh")
    assert await old.schema_version() == previous
    await old.close()

    store = SQLiteStore(path)
    await store.open()
    try:
        assert await store.schema_version() == migrations()[-1][0]
        assert (await store.partner_by_key_hash("h" * 64)) == partner
        device = await store.device_by_session(partner.id, "wa_1")
        assert device is not None
        assert device.name == "phone"
        await store.enqueue_message("m1", partner.id, device.id, "91", "text", "hi", None)
        assert (await store.message_by_id(partner.id, "m1")) is not None
    finally:
        await store.close()


async def test_refuses_a_database_from_a_newer_wagate(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    with pytest.raises(StoreError, match="newer"):
        await SQLiteStore(path).open()


async def test_every_lookup_is_scoped_to_its_partner(store: SQLiteStore) -> None:
    a = await store.create_partner("A", "a@x", "", "ha")
    b = await store.create_partner("B", "b@x", "", "hb")
    ua = await store.create_user(a.id, "u", "", "n", "user-hash")
    da = await store.create_device(a.id, ua.id, "wa_a", "d", "n", "dev-hash")
    await store.enqueue_message("m", a.id, da.id, "91", "text", "hi", None)
    assert await store.user_by_token_hash(b.id, "user-hash") is None
    assert await store.device_by_session(b.id, "wa_a") is None
    assert await store.list_devices(b.id) == []
    assert await store.list_users(b.id) == []
    assert await store.message_by_id(b.id, "m") is None
    assert await store.list_inbound(b.id, da.id, 10) == []
    await store.delete_device(b.id, da.id)  # another partner's delete is a no-op
    assert await store.device_by_session(a.id, "wa_a") is not None


async def test_receipts_only_move_messages_forward(store: SQLiteStore) -> None:
    p, d = await _seeded(store)
    await store.enqueue_message("m", p.id, d.id, "91", "text", "hi", None)
    await store.mark_sent("m", "WA1")
    assert await store.apply_receipt(d.id, ["WA1"], "read") == 1
    assert await store.apply_receipt(d.id, ["WA1"], "delivered") == 0
    message = await store.message_by_id(p.id, "m")
    assert message is not None
    assert message.status == "read"


async def test_deleted_device_token_stops_resolving(store: SQLiteStore) -> None:
    p, d = await _seeded(store)
    assert await store.device_by_token_hash("dh", 0) is not None
    await store.rotate_device_token(p.id, d.id, "n2", "dh2", prev_valid_until=100.0)
    assert await store.device_by_token_hash("dh", 50.0) is not None  # within grace
    assert await store.device_by_token_hash("dh", 150.0) is None  # after grace
    assert await store.device_by_token_hash("dh2", 150.0) is not None
    await store.delete_device(p.id, d.id)
    assert await store.device_by_token_hash("dh2", 0) is None
    assert await store.all_devices() == []


async def test_group_commit_isolates_a_failing_write(tmp_path: Path) -> None:
    import asyncio
    import sqlite3 as sq

    store = SQLiteStore(tmp_path / "w.db")
    await store.open()
    try:
        p = await store.create_partner("A", "a@x", "", "ha")
        u = await store.create_user(p.id, "u", "", "n", "uh")
        d = await store.create_device(p.id, u.id, "wa_a", "d", "n", "dh")
        jobs = [store.enqueue_message(f"m{i}", p.id, d.id, "91", "text", str(i), None)
                for i in range(300)]
        jobs.append(store.enqueue_message("m7", p.id, d.id, "91", "text", "duplicate id", None))
        results = await asyncio.gather(*jobs, return_exceptions=True)
        failures = [r for r in results if isinstance(r, BaseException)]
        assert len(failures) == 1
        assert isinstance(failures[0], sq.IntegrityError)
    finally:
        await store.close()
    with sq.connect(tmp_path / "w.db") as db:  # durable: visible to a fresh connection
        assert db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 300
        assert db.execute("SELECT body FROM messages WHERE id = 'm7'").fetchone()[0] == "7"


async def test_a_missing_lower_migration_is_applied_later(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    last = migrations()[-1]
    with sqlite3.connect(path) as db:  # as if an older migration had been merged late
        db.execute("DELETE FROM schema_migrations WHERE version = 4")
        db.execute("DROP TABLE meta")
    store = SQLiteStore(path)
    await store.open()
    try:
        assert await store.get_meta("x") is None  # the meta table is back
        assert await store.schema_version() == last[0]
    finally:
        await store.close()


async def test_housekeeping_forgets_only_what_retention_allows(store: SQLiteStore) -> None:
    p, d = await _seeded(store)
    hook = await store.create_webhook(p.id, "wh_1", "https://example.com/h", "nonce",
                                      ("*",), None)
    # Old rows: a sent message (with an Idempotency-Key), one still queued, an inbound
    # message, a delivered webhook with its attempt log, a pending one, a cached check.
    await store.enqueue_message("old", p.id, d.id, "91", "text", "hi", None,
                                idempotency=Idempotency(f"p{p.id}", "k1", "f"))
    await store.mark_sent("old", "WA1")
    await store.enqueue_message("waiting", p.id, d.id, "91", "text", "hi", None)
    await store.add_inbound(d.id, "IN1", "91", "91", "text", "old", False)
    await store.fanout(p.id, None, "device.connected", {"n": 1})
    [(done, _)] = await store.claim_deliveries(time.time(), 1, 60, per_endpoint=4, busy={})
    await store.finish_attempt(done, WebhookAttempt(time.time(), 200, 1.0, None, "ok"),
                               outcome="delivered", retry_at=None, disable_after=1e9)
    await store.fanout(p.id, None, "device.connected", {"n": 2})
    await store.save_recipient_checks(d.id, {"91": True})
    await asyncio.sleep(0.01)
    cut = time.time()
    await asyncio.sleep(0.01)
    await store.enqueue_message("young", p.id, d.id, "91", "text", "hi", None)
    await store.mark_sent("young", "WA2")
    await store.add_inbound(d.id, "IN2", "91", "91", "text", "young", False)
    await store.fanout(p.id, None, "device.connected", {"n": 3})
    for delivery, _ in await store.claim_deliveries(time.time(), 5, 60, per_endpoint=5,
                                                    busy={}):
        if delivery.payload.endswith('"n":3}}'):
            await store.finish_attempt(
                delivery, WebhookAttempt(time.time(), 200, 1.0, None, "ok"),
                outcome="delivered", retry_at=None, disable_after=1e9)

    config = load_config(env={})
    kept_forever = load_config(env={"WAGATE_STORAGE_MESSAGES_DAYS": "0",
                                    "WAGATE_STORAGE_INBOUND_DAYS": "0",
                                    "WAGATE_STORAGE_WEBHOOK_LOG_DAYS": "0"})
    removed = await housekeeping.purge(store, kept_forever, now=cut + 90 * DAY)
    assert removed == {"idempotency": 1, "recipient_checks": 1}
    assert await store.message_by_id(p.id, "old") is not None

    removed = await housekeeping.purge(store, config, now=cut + 90 * DAY)
    assert removed == {"messages": 1, "inbound": 1, "webhook_deliveries": 1}
    assert await store.message_by_id(p.id, "old") is None
    assert await store.message_events("old") == []
    assert (await store.message_by_id(p.id, "waiting")) is not None  # still queued
    assert (await store.message_by_id(p.id, "young")) is not None
    assert [i.body for i in await store.list_inbound(p.id, d.id, 10)] == ["young"]
    assert sorted(x.status for x in await store.list_deliveries(hook.id, 10)) == [
        "delivered", "pending"]  # the young one, and the old one still pending
    assert await store.delivery_attempts(done.id) == []
    assert await housekeeping.purge(store, config, now=cut + 90 * DAY) == {}


async def test_purging_never_hands_out_an_id_again(store: SQLiteStore) -> None:
    """SQLite gives a new row the highest rowid + 1: deleting the newest rows would reuse ids
    that the webhook pump's cursor has passed (and that receivers have seen)."""
    p, d = await _seeded(store)
    await store.create_webhook(p.id, "wh_1", "https://example.com/h", "nonce",
                               ("message.*",), None)
    for i in range(3):
        await store.enqueue_message(f"old{i}", p.id, d.id, "91", "text", "hi", None)
        await store.mark_sent(f"old{i}", f"WA{i}")
    assert await store.pump_message_events(100) == 6  # queued + sent, each
    config = load_config(env={})
    removed = await housekeeping.purge(store, config, now=time.time() + 91 * DAY)
    assert removed == {"messages": 2}  # the one owning the newest event stays
    await store.enqueue_message("new", p.id, d.id, "91", "text", "hi", None)
    await store.mark_sent("new", "WA9")
    assert await store.pump_message_events(100) == 2  # above the pump's cursor


async def test_resuming_a_partner_restarts_its_endpoints_failure_clock(store: SQLiteStore) -> None:
    p = await store.create_partner("A", "a@x", "", "ha")
    hook = await store.create_webhook(p.id, "wh_1", "https://example.com/h", "nonce",
                                      ("*",), None)
    await store.fanout(p.id, None, "webhook.test", {})
    [(delivery, _)] = await store.claim_deliveries(time.time(), 1, 60, per_endpoint=4,
                                                   busy={})
    await store.finish_attempt(delivery, WebhookAttempt(time.time(), 500, 1.0, None, "no"),
                               outcome="failed", retry_at=time.time() + 5,
                               disable_after=1e9)
    assert (await store.webhook_by_id(hook.id)).failing_since is not None  # type: ignore[union-attr]
    await store.set_partner_status(p.id, "suspended", "unpaid")
    await store.set_partner_status(p.id, "active", None)
    assert (await store.webhook_by_id(hook.id)).failing_since is None  # type: ignore[union-attr]


async def test_a_full_endpoints_backlog_never_holds_back_another_endpoint(
        store: SQLiteStore) -> None:
    """A slow endpoint fills its slots and keeps a long due backlog: a newer delivery for
    another endpoint is still claimed at once (claims skip full endpoints' rows, however many)."""
    slow_p = await store.create_partner("Slow", "s@x", "", "hs")
    fast_p = await store.create_partner("Fast", "f@x", "", "hf")
    slow = await store.create_webhook(slow_p.id, "wh_s", "https://s.example/h", "n1",
                                      ("*",), None)
    fast = await store.create_webhook(fast_p.id, "wh_f", "https://f.example/h", "n2",
                                      ("*",), None)
    await asyncio.gather(*(store.fanout(slow_p.id, None, "webhook.test", {"i": i})
                           for i in range(3000)))
    await store.fanout(fast_p.id, None, "webhook.test", {"i": "new"})
    claimed = await store.claim_deliveries(time.time(), 10, 60, per_endpoint=4,
                                           busy={slow.id: 4})
    assert [d.endpoint_id for d, _ in claimed] == [fast.id]
