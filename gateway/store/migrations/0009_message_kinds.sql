-- Message kinds: media, location and link-preview details of outgoing messages, and a cache of
-- which recipients have WhatsApp (the optional on-WhatsApp check).
ALTER TABLE messages ADD COLUMN payload TEXT;  -- JSON; NULL for plain text
ALTER TABLE messages ADD COLUMN media_sha256 TEXT;  -- the media blob a queued message needs
CREATE INDEX messages_media ON messages(media_sha256) WHERE media_sha256 IS NOT NULL;

CREATE TABLE recipient_checks (
    device_id    INTEGER NOT NULL REFERENCES devices(id),
    phone        TEXT NOT NULL,
    on_whatsapp  INTEGER NOT NULL,
    checked_at   REAL NOT NULL,
    PRIMARY KEY (device_id, phone)
);
