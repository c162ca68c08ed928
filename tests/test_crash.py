"""Nothing a client was told is accepted may be lost: SIGKILL the daemon mid-stream."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx

from tests.daemon import Daemon

TO = "919876543210"


def _wait(fn: object, timeout: float = 15) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()  # type: ignore[operator]
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_sigkill_mid_stream_loses_no_accepted_message(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "data", tmp_path / "daemon.log")
    daemon.start()
    try:
        with httpx.Client(base_url=daemon.url, timeout=10) as http:
            key = http.post("/partner/register", json={"name": "A", "email": "a@x.io"}).json()[
                "api_key"]
            h = {"x-api-key": key}
            user = http.post("/partner/users", headers=h, json={"label": "U"}).json()[
                "user_token"]
            dev = http.post("/partner/devices", headers={**h, "x-user-token": user},
                            json={"device_name": "Printer"}).json()
            sid, url = dev["session_id"], dev["send_url"]
            _wait(lambda: http.get(f"/sim/devices/{sid}", headers=h).json()["qr"])
            http.post(f"/sim/devices/{sid}/scan", headers=h, json={"phone": TO})
            _wait(lambda: http.get(f"/partner/devices/{sid}/status", headers=h)
                  .json()["status"] == "connected")

        accepted: list[str] = []
        lock = threading.Lock()

        def stream(worker: int) -> None:
            with httpx.Client(timeout=5) as client:
                for i in range(100_000):
                    try:
                        r = client.post(url, json={"to": TO, "message": f"w{worker}-{i}",
                                                   "async": i % 2 == 0})
                    except httpx.TransportError:
                        return  # the daemon died: anything unanswered was never accepted
                    if r.status_code in (200, 202):
                        with lock:
                            accepted.append(r.json()["message_id"])

        threads = [threading.Thread(target=stream, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        _wait(lambda: len(accepted) >= 300)
        daemon.terminate(signal.SIGKILL)
        for t in threads:
            t.join()

        daemon.start()
        with httpx.Client(base_url=daemon.url, timeout=10) as http:
            def settled() -> bool:
                pending = 0
                for mid in accepted:
                    status = http.get(f"/partner/messages/{mid}", headers=h).json()["status"]
                    pending += status in ("queued", "sending")
                return pending == 0

            _wait(settled, timeout=30)
            sent = http.get(f"/sim/devices/{sid}/sent", headers=h,
                            params={"limit": 100_000}).json()["messages"]
            statuses = {http.get(f"/partner/messages/{mid}", headers=h).json()["status"]
                        for mid in accepted}
        received = {m["message_id"] for m in sent}
        missing = [mid for mid in accepted if mid not in received]
        assert not missing, f"{len(missing)} accepted messages never reached WhatsApp"
        assert statuses <= {"sent", "delivered", "read"}
        # a resend after the crash keeps its id, so WhatsApp sees no duplicate
        assert len(received) == len(sent)
    finally:
        daemon.kill()
