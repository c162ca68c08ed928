"""The daemon's log after a representative run holds no credential: no partner key, user
token, device token, link token, operator token or webhook secret, whole or in part beyond the
redacted `prefix_…last4` form."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from gateway.config import load_config
from gateway.datadir import init_data_dir
from gateway.operator import operator_token
from tests.daemon import Daemon

TO = "919876543210"
TOKEN = re.compile(r"\b(?:pk|pu|dt|lt|op)_[A-Za-z0-9]{6,}|whsec_[A-Za-z0-9+/=]{6,}")


def test_a_full_flow_leaves_no_credential_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    daemon = Daemon(tmp_path / "data", log, WAGATE_LOG_LEVEL="debug",
                    WAGATE_WEBHOOKS_ALLOW_PRIVATE_TARGETS="1", WAGATE_WEBHOOKS_ALLOW_HTTP="1",
                    WAGATE_WEBHOOKS_RETRY_SCHEDULE="1")
    daemon.start()
    secrets: list[str] = []
    try:
        with httpx.Client(base_url=daemon.url, timeout=30) as c:
            r = c.post("/partner/register", json={"name": "Log", "email": "log@example.com"})
            key = r.json()["api_key"]
            h = {"x-api-key": key}
            scoped = c.post("/partner/keys", headers=h,
                            json={"name": "ops", "scopes": ["devices:read"]}).json()["api_key"]
            assert c.get("/partner/me", headers={"x-api-key": scoped}).status_code == 200
            user = c.post("/partner/users", headers=h, json={"label": "u"}).json()["user_token"]
            device = c.post("/partner/devices", headers={**h, "x-user-token": user},
                            json={"device_name": "phone"}).json()
            sid = device["session_id"]
            assert c.get(f"/partner/users/{user}/devices", headers=h).status_code == 200
            while c.get(f"/sim/devices/{sid}", headers=h).json().get("qr") is None:
                time.sleep(0.05)
            assert c.post(f"/sim/devices/{sid}/scan", headers=h,
                          json={"phone": TO}).status_code == 200
            time.sleep(0.3)
            sent = c.get(device["send_url"], params={"to": TO, "message": "secret text"})
            assert sent.status_code == 200, sent.text
            c.post(device["send_url"], json={"to": TO, "message": "hi"})
            c.get(device["send_url"].replace("/send", f"/messages/{sent.json()['message_id']}"))
            rotated = c.post(f"/partner/devices/{sid}/rotate-token", headers=h).json()
            hook = c.post("/partner/webhooks", headers=h,
                          json={"url": "http://127.0.0.1:9/hook"}).json()
            wid = hook["webhook"]["webhook_id"]
            rotated_secret = c.post(f"/partner/webhooks/{wid}/rotate-secret", headers=h).json()
            c.post(f"/partner/webhooks/{wid}/test", headers=h)
            link = c.post(f"/partner/devices/{sid}/link", headers=h, json={}).json()["link_url"]
            path = "/link/" + link.split("/link/")[1]
            assert c.get(path).status_code == 200
            assert c.get(f"{path}/state").status_code == 200
            c.get("/partner/me", headers={"x-api-key": "pk_" + "A" * 39})  # a failed lookup
            c.get("/partner/me", headers={"x-api-key": key[:-1] + "x"})  # a typo
            c.get(device["send_url"][:-8] + "nope/send")
            for args in (("partners", "suspend", "1", "--reason", "test"),
                         ("partners", "resume", "1"), ("partners", "limits", "1", "--api", "500"),
                         ("audit",)):
                daemon.cli(*args)
            assert c.delete(f"/partner/devices/{sid}", headers=h).status_code == 200
            time.sleep(1.5)  # a webhook retry or two, with their log lines
        op = operator_token(init_data_dir(load_config(env={
            "WAGATE_DATA_DIR": str(tmp_path / "data")})))
        secrets = [key, scoped, user, device["device_token"], rotated["device_token"],
                   hook["secret"], rotated_secret["secret"], link.split("/link/")[1], op]
    finally:
        daemon.terminate()
    text = log.read_text()
    assert "GET /partner/me" in text
    assert "/wa/dt_…" in text
    assert "secret text" not in text  # a GET send URL's query string is not logged
    for secret in secrets:
        assert secret not in text
        assert secret[3:15] not in text
    leaks = TOKEN.findall(text)
    assert leaks == [], leaks[:5]
