"""Send-URL throughput against a bare Starlette endpoint, on this machine, with the same load tool.

Starts the daemon (simulated driver, pacing off) and a bare Starlette JSON endpoint, loads both
with wrk (64 connections; `make bench` installs it) and prints accepted sends/s, p50/p99 and the
ratio; then the end-to-end rate from accept to the simulated WhatsApp's `sent`; webhook
deliveries/s (one `message.sent` webhook per message, signed and delivered to a bare receiver
process on loopback, default webhook concurrency); and the disk's fsync rate. Finishes in about
a minute.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

DURATION = int(os.environ.get("BENCH_SECONDS", "8"))
CONNECTIONS = 64
TO = "919876543210"

BARE_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
import orjson

async def send(request):
    data = orjson.loads(await request.body())
    return JSONResponse({"type": "success", "message": "Message sent", "to": data["to"]})

app = Starlette(routes=[Route("/wa/{token}/send", send, methods=["POST"])])
"""

RECEIVER_APP = """
import time
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

state = {"count": 0, "first": 0.0, "last": 0.0}

async def hook(request):
    await request.body()
    now = time.monotonic()
    if not state["count"]:
        state["first"] = now
    state["count"] += 1
    state["last"] = now
    return PlainTextResponse("ok")

async def count(request):
    return JSONResponse({**state, "now": time.monotonic()})

app = Starlette(routes=[Route("/hook", hook, methods=["POST"]), Route("/count", count)])
"""
WEBHOOK_WAIT = 60.0  # at most this long for the webhook backlog to drain

WRK_LUA = """
wrk.method = "POST"
wrk.body = '{"to":"{TO}","message":"bench","async":true}'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %.3f %.3f %d\\n", summary.requests,
    summary.duration, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.timeout))
end
""".replace("{TO}", TO)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str) -> None:
    for _ in range(200):
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def wrk(url: str, script: Path) -> dict[str, float]:
    out = subprocess.run(["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{DURATION}s", "-s", str(script),
                          url], capture_output=True, text=True, check=True).stdout
    match = re.search(r"RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+)", out)
    if match is None:
        raise SystemExit(out)
    requests, micros, p50, p99, errors = match.groups()
    return {"rps": int(requests) / (int(micros) / 1e6), "p50": float(p50), "p99": float(p99),
            "errors": int(errors), "requests": int(requests)}


def receiver_state(port: int, expected: int, at_load_end: dict[str, float]
                   ) -> dict[str, float]:
    """Wait for `expected` deliveries (or no progress for 10 s, or WEBHOOK_WAIT). `rate` is
    deliveries over the time between the first and the last one the receiver saw (mostly while
    sends still load the daemon); `drain` is the rate after the send load stopped."""
    deadline = time.monotonic() + WEBHOOK_WAIT
    last_count, last_change = -1, time.monotonic()
    while True:
        state = httpx.get(f"http://127.0.0.1:{port}/count", timeout=5).json()
        now = time.monotonic()
        if state["count"] != last_count:
            last_count, last_change = state["count"], now
        if state["count"] >= expected or now > deadline or now - last_change > 10:
            break
        time.sleep(0.2)
    span = state["last"] - state["first"]
    drained = state["count"] - at_load_end["count"]
    drain_span = state["last"] - at_load_end["now"]
    return {"count": state["count"], "rate": state["count"] / span if span > 0 else 0.0,
            "drain": drained / drain_span if drained > 100 and drain_span > 0 else 0.0,
            "drained": drained}


def fsync_rate(directory: Path, seconds: float = 2.0) -> float:
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    count, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        os.write(fd, b"x" * 200)
        os.fsync(fd)
        count += 1
    os.close(fd)
    path.unlink()
    return count / seconds


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk` (make bench does it)")
    work = Path(tempfile.mkdtemp(prefix="wagate-bench-"))
    script = work / "post.lua"
    script.write_text(WRK_LUA)
    port, bare_port, hook_port = free_port(), free_port(), free_port()
    env = {**os.environ, "WAGATE_DATA_DIR": str(work / "data"), "WAGATE_PORT": str(port),
           "WAGATE_DRIVER": "simulated", "WAGATE_DELIVERY_RATE_PER_MINUTE": "0",
           "WAGATE_SIMULATED_SEND_SECONDS": "0", "WAGATE_SIMULATED_CONNECT_SECONDS": "0.01",
           "WAGATE_SERVER_ACCESS_LOG": "false", "WAGATE_LOG_LEVEL": "warning",
           "WAGATE_SECURITY_SEND_RATE_PER_MINUTE": "0",
           "WAGATE_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "1", "WAGATE_WEBHOOKS_ALLOW_HTTP": "1"}
    daemon = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    (work / "bare.py").write_text(BARE_APP)
    bare = subprocess.Popen([sys.executable, "-m", "uvicorn", "bare:app", "--port", str(bare_port),
                             "--no-access-log", "--log-level", "warning"], cwd=work)
    (work / "receiver.py").write_text(RECEIVER_APP)
    receiver = subprocess.Popen([sys.executable, "-m", "uvicorn", "receiver:app", "--port",
                                 str(hook_port), "--no-access-log", "--log-level", "warning"],
                                cwd=work)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_up(f"{base}/healthz")
        wait_up(f"http://127.0.0.1:{bare_port}/")
        wait_up(f"http://127.0.0.1:{hook_port}/count")
        with httpx.Client(base_url=base, timeout=30) as http:
            key = http.post("/partner/register", json={"name": "bench", "email": "b@x.io"}
                            ).json()["api_key"]
            h = {"x-api-key": key}
            hook = http.post("/partner/webhooks", headers=h, json={
                "url": f"http://127.0.0.1:{hook_port}/hook", "events": ["message.sent"]})
            if hook.status_code != 201:
                raise SystemExit(f"webhook endpoint refused: {hook.text}")
            user = http.post("/partner/users", headers=h, json={"label": "u"}).json()[
                "user_token"]
            dev = http.post("/partner/devices", headers={**h, "x-user-token": user},
                            json={"device_name": "bench"}).json()
            sid = dev["session_id"]
            while not http.get(f"/sim/devices/{sid}", headers=h).json()["qr"]:
                time.sleep(0.05)
            http.post(f"/sim/devices/{sid}/scan", headers=h, json={"phone": TO})
            while http.get(f"/partner/devices/{sid}/status", headers=h).json()[
                    "status"] != "connected":
                time.sleep(0.05)

            bare_result = wrk(f"http://127.0.0.1:{bare_port}/wa/x/send", script)
            started = time.monotonic()
            send_result = wrk(dev["send_url"], script)
            at_load_end = httpx.get(f"http://127.0.0.1:{hook_port}/count", timeout=5).json()
            accepted = send_result["requests"] - send_result["errors"]
            while True:
                stats = http.get("/partner/me", headers=h).json()["stats"]["messages"]
                pending = stats.get("queued", 0) + stats.get("sending", 0)
                if pending == 0:
                    break
                time.sleep(0.2)
            e2e = accepted / (time.monotonic() - started)
            hooks = receiver_state(hook_port, accepted, at_load_end)
        fsyncs = fsync_rate(work)
        peak_rss = peak_rss_mb(daemon.pid)
        print(json.dumps({"bare": bare_result, "send_url": send_result}, indent=1))
        print(f"bare endpoint:   {bare_result['rps']:8.0f} req/s  p50 {bare_result['p50']:.1f} ms"
              f"  p99 {bare_result['p99']:.1f} ms")
        print(f"send URL:        {send_result['rps']:8.0f} req/s  p50 {send_result['p50']:.1f} ms"
              f"  p99 {send_result['p99']:.1f} ms  (errors {send_result['errors']})")
        print(f"ratio:           {send_result['rps'] / bare_result['rps']:.2f}  (target >= 0.6)")
        print(f"end to end:      {e2e:8.0f} msg/s accepted -> sent to simulated WhatsApp "
              f"({accepted} messages, one device)")
        drained = "" if hooks["count"] >= accepted else \
            f", {accepted - hooks['count']} still pending after {WEBHOOK_WAIT:.0f} s"
        print(f"webhooks:        {hooks['rate']:8.0f} deliveries/s  ({hooks['count']} "
              f"message.sent deliveries to one endpoint{drained})")
        if hooks["drain"]:
            print(f"  after the load: {hooks['drain']:7.0f} deliveries/s  ({hooks['drained']} "
                  f"delivered after the last send was accepted)")
        print(f"disk fsync rate: {fsyncs:8.0f} /s")
        print(f"daemon peak RSS: {peak_rss:8.1f} MB")
    finally:
        for proc in (daemon, bare, receiver):
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
