"""Tokens and random ids: entropy, shape, checksum, derivation and redaction."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from gateway.ids import RandomHex
from gateway.logs import redact_text
from gateway.store.sqlite_webhooks import new_event_id
from gateway.tokens import (
    SECRET_FILE,
    TokenVault,
    new_nonce,
    new_session_id,
    new_token,
    token_hash,
    well_formed,
)
from sessions.ids import new_message_id


def test_new_tokens_are_unique_prefixed_and_checksummed() -> None:
    tokens = {new_token("pk") for _ in range(1000)}
    assert len(tokens) == 1000
    for t in list(tokens)[:50]:
        assert t.startswith("pk_")
        assert well_formed(t, "pk")
        assert not well_formed(t, "dt")
    t = next(iter(tokens))
    # a single mistyped character fails the checksum before any lookup
    flipped = t[:10] + ("A" if t[10] != "A" else "B") + t[11:]
    assert not well_formed(flipped, "pk")
    assert not well_formed(t[:-1], "pk")
    assert not well_formed("pk_" + "a" * 39, "pk")


def test_hash_is_sha256_hex_and_not_the_token() -> None:
    t = new_token("dt")
    h = token_hash(t)
    assert len(h) == 64
    assert t not in h
    assert token_hash(t) == h


def test_vault_derives_stable_tokens_per_secret(tmp_path: Path) -> None:
    vault = TokenVault.load_or_create(tmp_path)
    assert (tmp_path / SECRET_FILE).stat().st_mode & 0o777 == 0o600
    nonce = new_nonce()
    token = vault.derive("dt", nonce)
    assert well_formed(token, "dt")
    assert TokenVault.load_or_create(tmp_path).derive("dt", nonce) == token
    assert vault.derive("pu", nonce) != token.replace("dt_", "pu_")
    other = TokenVault.load_or_create(tmp_path / "other")
    assert other.derive("dt", nonce) != token  # the database's nonce alone is useless


def test_vault_rejects_short_secret() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenVault(b"short")


def test_session_ids_look_like_the_seed() -> None:
    sid = new_session_id()
    assert sid.startswith("wa_")
    assert len(sid) == 19


def test_redaction_keeps_prefix_and_last_four() -> None:
    t = new_token("dt")
    line = f'127.0.0.1 - "GET /wa/{t}/send?to=1 HTTP/1.1" 200'
    out = redact_text(line)
    assert t not in out
    assert f"/wa/dt_…{t[-4:]}/send?…" in out
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw/+=="
    assert "MfKQ9r8G" not in redact_text(f"secret {secret} end")


def test_message_and_event_ids_are_random_hex_of_whatsapps_shape() -> None:
    ids = {new_message_id() for _ in range(2000)}  # several refills of the pool
    assert len(ids) == 2000
    assert all(re.fullmatch(r"3EB0[0-9A-F]{18}", i) for i in ids)
    assert re.fullmatch(r"evt_[0-9a-f]{24}", new_event_id())


def test_a_forked_child_never_repeats_its_parents_next_id() -> None:
    pool = RandomHex(8)
    pool()  # the pool is now full in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        os.write(write, pool().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 16
    assert child != pool()
