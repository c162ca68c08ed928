"""Persistence behind one small interface, so a PostgreSQL store can sit beside SQLite."""

from gateway.store.base import (
    Device,
    Idempotency,
    IdempotentReplay,
    Inbound,
    Message,
    MessageEvent,
    Partner,
    Store,
    User,
)

__all__ = ["Device", "Idempotency", "IdempotentReplay", "Inbound", "Message", "MessageEvent",
           "Partner", "Store", "User", "open_store"]


async def open_store(url_or_path: str) -> Store:
    """Open the store a setting names: a path (SQLite) today; `postgresql://` later."""
    if url_or_path.startswith(("postgres://", "postgresql://")):
        from gateway.errors import ConfigError

        raise ConfigError("storage.database: PostgreSQL is not supported yet; use a file path")
    from gateway.store.sqlite import SQLiteStore

    store = SQLiteStore(url_or_path)
    await store.open()
    return store
