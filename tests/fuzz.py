"""API fuzzing with schemathesis against a live daemon (simulated driver): `make fuzz`.

Starts `wagate serve` on a temporary data directory, registers a partner and gives it one of
everything (users, linked devices with messages, a webhook with deliveries, spare API keys, a
link page), then runs schemathesis twice against /openapi.json:

1. every operation except /admin, with the partner's API key and a user token, the real ids
   offered to the generator (schemathesis dictionaries) beside random ones;
2. the /admin operations with the operator token.

Checks: no 5xx, every status code, content type and response body as documented. Then the
daemon's log must hold no traceback. Exit code 0 when all of that holds.

    .venv/bin/python -m tests.fuzz [--max-examples N] [--seed S] [--keep]

`tests/test_fuzz.py` runs a short version of this inside `make test`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.config import load_config
from gateway.datadir import init_data_dir
from gateway.operator import operator_token
from tests.daemon import Daemon

TO = "919876543210"
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance")
ENV = {
    "WAGATE_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "1",
    "WAGATE_WEBHOOKS_ALLOW_HTTP": "1",
    "WAGATE_SERVER_ACCESS_LOG": "false",
    "WAGATE_LOG_LEVEL": "warning",
}


def _ok(r: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, f"{r.request.method} {r.request.url.path}: {r.text}"
    data: dict[str, Any] = r.json()
    return data


def populate(url: str) -> dict[str, Any]:
    """A partner with one of everything; returns its credentials and ids."""
    with httpx.Client(base_url=url, timeout=30) as c:
        key = _ok(c.post("/partner/register", json={"name": "Fuzz", "email": "fuzz@example.com"}),
                  201)["api_key"]
        h = {"x-api-key": key}
        user = _ok(c.post("/partner/users", headers=h, json={"label": "u"}), 201)["user_token"]
        devices = []
        for name in ("linked", "spare", "pairing"):
            devices.append(_ok(c.post("/partner/devices", json={"device_name": name},
                                      headers={**h, "x-user-token": user}), 201))
        for device in devices[:2]:
            sid = device["session_id"]
            deadline = time.monotonic() + 10
            while _ok(c.get(f"/sim/devices/{sid}", headers=h)).get("qr") is None:
                assert time.monotonic() < deadline, "no QR code"
                time.sleep(0.05)
            _ok(c.post(f"/sim/devices/{sid}/scan", headers=h, json={"phone": TO}))
        time.sleep(0.3)
        messages = [_ok(c.post(devices[0]["send_url"], json={"to": TO, "message": "hi"}))
                    ["message_id"] for _ in range(2)]
        hook = _ok(c.post("/partner/webhooks", headers=h,
                          json={"url": "http://127.0.0.1:9/hook"}), 201)["webhook"]["webhook_id"]
        _ok(c.post(f"/partner/webhooks/{hook}/test", headers=h), 202)
        time.sleep(0.3)
        deliveries = [d["delivery_id"] for d in _ok(c.get(
            f"/partner/webhooks/{hook}/deliveries", headers=h))["deliveries"]]
        spare = _ok(c.post("/partner/keys", headers=h,
                           json={"name": "spare", "scopes": ["users:read"]}), 201)["key"]
        _ok(c.post(f"/partner/devices/{devices[0]['session_id']}/link", headers=h,
                   json={}), 201)
        # partner 2, the operator pass's target (so it does not suspend the partner above)
        _ok(c.post("/partner/register", json={"name": "Victim", "email": "victim@example.com"}),
            201)
    tokens = [d["send_url"].split("/wa/")[1].split("/")[0] for d in devices]
    return {
        "key": key, "user": user,
        "session_id": [d["session_id"] for d in devices],
        "device_token": tokens, "message_id": messages, "webhook_id": [hook],
        "delivery_id": deliveries or [1], "key_id": [spare["key_id"]], "user_token": [user],
        "partner_id": ["2"],  # the victim: the operator pass suspends and limits it
    }


def config_file(path: Path, ids: dict[str, Any]) -> Path:
    """A schemathesis.toml offering the real ids (most of the time) to the generator."""
    lines = []
    names = ("session_id", "device_token", "message_id", "webhook_id", "delivery_id", "key_id",
             "user_token", "partner_id")
    for name in names:
        values = ", ".join(json.dumps(str(v)) for v in ids[name])
        lines += [f"[dictionaries.{name}]", f"values = [{values}]", ""]
    lines.append("[parameters]")
    for name in names:
        lines.append(f'"path.{name}" = {{ dictionary = "{name}", probability = 0.8 }}')
    path.write_text("\n".join(lines) + "\n")
    return path


def schemathesis(url: str, config: Path, headers: dict[str, str], args: argparse.Namespace,
                 *extra: str) -> int:
    exe = Path(sys.executable).parent / "schemathesis"
    cmd = [str(exe), "--config-file", str(config), "run", f"{url}/openapi.json",
           "--checks", CHECKS, "--max-examples", str(args.max_examples), "--no-shrink",
           "--workers", str(args.workers), "--warnings", "off", "--request-timeout", "30",
           *extra]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    if args.phases:
        cmd += ["--phases", args.phases]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    return subprocess.run(cmd, cwd=config.parent, check=False).returncode


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="wagate-fuzz-") as tmp:
        work = Path(args.dir) if args.dir else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = work / "data"
        daemon = Daemon(data, work / "daemon.log", **ENV)
        daemon.start()
        try:
            ids = populate(daemon.url)
            config = config_file(work / "schemathesis.toml", ids)
            partner = schemathesis(daemon.url, config,
                                   {"x-api-key": ids["key"], "x-user-token": ids["user"]}, args,
                                   "--exclude-path-regex", "^/admin")
            op_token = operator_token(init_data_dir(load_config(env={
                "WAGATE_DATA_DIR": str(data)})))
            admin = schemathesis(daemon.url, config, {"x-operator-token": op_token}, args,
                                 "--include-path-regex", "^/admin")
        finally:
            daemon.terminate()
        log = (work / "daemon.log").read_text(errors="replace")
        crashed = "Traceback" in log or "unhandled error" in log
        if crashed:
            print(log[-5000:], file=sys.stderr)
            print("fuzz: the daemon logged an unhandled error", file=sys.stderr)
        print(f"fuzz: partner pass exit {partner}, operator pass exit {admin}")
        return 0 if partner == admin == 0 and not crashed else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__.split("\n")[0])
    p.add_argument("--max-examples", type=int, default=50, help="cases per operation")
    p.add_argument("--workers", type=int, default=1,
                   help="concurrent schemathesis workers (more than 1 trips a hypothesis "
                        "thread-safety bug in schemathesis 4.32)")
    p.add_argument("--seed", type=int)
    p.add_argument("--phases", help="schemathesis phases (default: all)")
    p.add_argument("--dir", help="keep the data directory, log and config here")
    return p


if __name__ == "__main__":
    raise SystemExit(run(parser().parse_args()))
