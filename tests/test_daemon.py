"""The daemon as a real process: SIGTERM, restart, the CLI beside it, and what it logs."""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.daemon import Daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path / "data", tmp_path / "daemon.log")
    d.start()
    try:
        yield d
    finally:
        d.kill()


def _wait(fn: Any, timeout: float = 5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.03)
    raise AssertionError("timed out")


def _setup(http: httpx.Client) -> dict[str, str]:
    key = http.post("/partner/register", json={"name": "A", "email": "a@x.io"}).json()["api_key"]
    h = {"x-api-key": key}
    user = http.post("/partner/users", headers=h, json={"label": "U"}).json()["user_token"]
    dev = http.post("/partner/devices", headers={**h, "x-user-token": user},
                    json={"device_name": "Printer"}).json()
    return {"key": key, "user": user, **dev}


def _link(http: httpx.Client, key: str, sid: str) -> None:
    h = {"x-api-key": key}
    _wait(lambda: http.get(f"/sim/devices/{sid}", headers=h).json()["qr"])
    assert http.post(f"/sim/devices/{sid}/scan", headers=h,
                     json={"phone": "919876543210"}).status_code == 200
    _wait(lambda: http.get(f"/partner/devices/{sid}/status", headers=h)
          .json()["status"] == "connected")


def test_sigterm_drains_in_flight_then_restart_reconnects(daemon: Daemon) -> None:
    with httpx.Client(base_url=daemon.url, timeout=10) as http:
        dev = _setup(http)
        key, sid = dev["key"], dev["session_id"]
        _link(http, key, sid)
        # an in-flight send that takes 1 s must complete although SIGTERM arrives meanwhile
        http.post(f"/sim/devices/{sid}/faults", headers={"x-api-key": key},
                  json={"send_delay": 1.0})
        result: dict[str, httpx.Response] = {}
        sender = threading.Thread(target=lambda: result.setdefault("r", http.post(
            dev["send_url"], json={"to": "919876543210", "message": "in flight"})))
        sender.start()
        time.sleep(0.3)
        code, took = daemon.terminate(signal.SIGTERM)
        sender.join()
    assert result["r"].status_code == 200, result["r"].text
    # uvicorn re-raises the signal after a clean shutdown; systemd counts that as success
    assert code in (0, -signal.SIGTERM)
    assert took < 10, f"SIGTERM took {took:.1f}s"

    daemon.start()
    with httpx.Client(base_url=daemon.url, timeout=10) as http:
        h = {"x-api-key": key}
        _wait(lambda: http.get(f"/partner/devices/{sid}/status", headers=h)
              .json()["status"] == "connected")
        r = http.get(dev["send_url"], params={"to": "919876543210", "message": "again"})
        assert r.status_code == 200, r.text
        sent = http.get(f"/sim/devices/{sid}/sent", headers=h).json()["messages"]
        assert [m["message"] for m in sent] == ["in flight", "again"]
        # delete: the send URL answers 404 at once
        assert http.delete(f"/partner/devices/{sid}", headers=h).status_code == 200
        r = http.post(dev["send_url"], json={"to": "919876543210", "message": "gone"})
        assert r.status_code == 404
    code, took = daemon.terminate()
    assert code in (0, -signal.SIGTERM)
    assert took < 10

    log = daemon.log.read_text()
    for token in (key, dev["user"], dev["device_token"]):
        assert token not in log
    assert not re.search(r"\b(pk|pu|dt)_[A-Za-z0-9]{12,}", log), "a token reached the log"
    assert "/wa/dt_…" in log  # access log lines are kept, redacted
    assert "Traceback" not in log


def test_cli_beside_a_running_daemon(daemon: Daemon) -> None:
    created = daemon.cli("partners", "create", "--name", "Ops", "--email", "ops@x.io").stdout
    key = re.search(r"(pk_\w+)", created)
    assert key is not None
    listing = daemon.cli("partners", "list").stdout
    assert "Ops" in listing
    assert "ops@x.io" in listing
    assert key.group(1) not in listing
    with httpx.Client(base_url=daemon.url, timeout=10) as http:
        h = {"x-api-key": key.group(1)}
        user = http.post("/partner/users", headers=h, json={"label": "U"}).json()["user_token"]
        sid = http.post("/partner/devices", headers={**h, "x-user-token": user},
                        json={"device_name": "Till"}).json()["session_id"]
        qr = daemon.cli("qr", sid, "--wait", "5").stdout
        assert "█" in qr
        assert "Linked devices" in qr
        assert "linked as 14155552671" in daemon.cli("sim", "scan", sid, "+1 415 555 2671").stdout
        _wait(lambda: http.get(f"/partner/devices/{sid}/status", headers=h)
              .json()["status"] == "connected")
    assert "connected as +14155552671" in daemon.cli("qr", sid).stdout
    devices = daemon.cli("devices", "list").stdout
    assert sid in devices
    assert "connected" in devices
    assert "Till" in devices
    rotated = daemon.cli("partners", "rotate-key", "1").stdout
    assert "new API key" in rotated
    missing = daemon.cli("qr", "wa_nope", check=False)
    assert missing.returncode == 1
    assert "device_not_found" in missing.stderr


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    d = Daemon(tmp_path / "data", tmp_path / "log")
    bad = d.cli("version", check=False)
    assert bad.returncode == 0
    assert bad.stdout.startswith("wagate ")
    d.env["WAGATE_PORT"] = "eighty"
    bad = d.cli("devices", "list", check=False)
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0
    assert "WAGATE_PORT" in bad.stderr
    assert "Traceback" not in bad.stderr
    d.env["WAGATE_PORT"] = "8080"
    d.env["WAGATE_CONFIG"] = str(tmp_path / "missing.toml")
    bad = d.cli("serve", check=False)
    assert bad.returncode == 2
    assert "not found" in bad.stderr
    del d.env["WAGATE_CONFIG"]
    init = d.cli("init", "--write-config", str(tmp_path / "wagate.toml"))
    assert "schema v" in init.stdout
    assert (tmp_path / "wagate.toml").exists()
    assert (tmp_path / "data" / "server.secret").exists()
    assert d.cli("--help").stdout.count("serve") >= 1
    assert d.cli("partners", "--help").returncode == 0
    none = d.cli(check=False)
    assert none.returncode == 2


def test_one_daemon_per_data_dir_and_secret_must_match(daemon: Daemon, tmp_path: Path) -> None:
    second = Daemon(tmp_path / "data", tmp_path / "second.log")
    second.env["WAGATE_DATA_DIR"] = daemon.env["WAGATE_DATA_DIR"]
    result = second.cli("serve", check=False)
    assert result.returncode == 1
    assert "another wagate" in result.stderr
    # the running daemon was not touched
    assert httpx.get(f"{daemon.url}/healthz").status_code == 200
    daemon.terminate()
    secret = tmp_path / "data" / "server.secret"
    secret.write_text("ab" * 32 + "\n")  # a secret that is not this database's
    result = daemon.cli("serve", check=False)
    assert result.returncode == 2
    assert "does not belong to this database" in result.stderr


def test_doctor_and_backup_beside_a_running_daemon(daemon: Daemon, tmp_path: Path) -> None:
    doctor = daemon.cli("doctor", check=False)
    assert "CHECK" in doctor.stdout
    for name in ("data directory", "database", "server secret", "libmagic", "public URL"):
        line = next(ln for ln in doctor.stdout.splitlines() if ln.startswith(name))
        assert " ok " in line, line
    with httpx.Client(base_url=daemon.url, timeout=10) as http:
        dev = _setup(http)
        _link(http, dev["key"], dev["session_id"])
    out = daemon.cli("backup", str(tmp_path / "bk")).stdout
    assert "wagate.db" in out
    assert (tmp_path / "bk" / "server.secret").stat().st_mode & 0o777 == 0o600
    # the backup is a consistent database with the device in it
    import sqlite3

    with sqlite3.connect(tmp_path / "bk" / "wagate.db") as db:
        assert db.execute("SELECT session_id FROM devices").fetchone()[0] == dev["session_id"]
    again = daemon.cli("backup", str(tmp_path / "bk"), check=False)
    assert again.returncode == 1
    assert "not empty" in again.stderr
    # restore into a new data directory: the device comes back linked, without a scan
    daemon.terminate()
    restored = tmp_path / "restored"
    restored.mkdir(mode=0o700)
    for item in (tmp_path / "bk").iterdir():
        (restored / item.name).write_bytes(item.read_bytes())
    (restored / "server.secret").chmod(0o600)
    daemon.env["WAGATE_DATA_DIR"] = str(restored)
    daemon.start()
    with httpx.Client(base_url=daemon.url, timeout=10) as http:
        _wait(lambda: http.get(f"/partner/devices/{dev['session_id']}/status",
                               headers={"x-api-key": dev["key"]}).json()["status"] == "connected")
        r = http.post(dev["send_url"], json={"to": "919876543210", "message": "restored"})
        assert r.status_code == 200
