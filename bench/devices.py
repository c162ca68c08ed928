"""Issue 7's acceptance bench: 50 neonize devices retrying offline, measured from the outside.

Starts `wagate serve` as a subprocess with WAGATE_DRIVER=neonize on a temporary data directory,
registers a partner, creates N devices (which cannot reach WhatsApp and keep retrying with the
default backoff), then reports:

- how long until every device's status carried its dial error,
- /healthz latency (p50/p99/max) over a few hundred requests while the devices retry,
- threads, RSS and open fds of the daemon and its worker processes, in total and per device,
- that deleting every device leaves no store file, then no worker process or extra thread,
- how long SIGTERM takes to stop the daemon with N devices retrying.

Usage: .venv/bin/python bench/devices.py [--devices 50] [--requests 400] [--keep] [--env K=V]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
WORKER_MODULE = b"sessions.drivers.neonize.worker"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """Threads, RSS (kB) and open fds of one process, from /proc."""
    out = {"threads": 0, "rss_kb": 0, "fds": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "Threads":
                out["threads"] = int(value)
            elif key == "VmRSS":
                out["rss_kb"] = int(value.split()[0])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        pass
    return out


def worker_pids(parent: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(b")", 1)[1].split()[1]) == parent and WORKER_MODULE in cmdline:
            pids.append(int(entry))
    return sorted(pids)


def snapshot(daemon: int) -> dict[str, Any]:
    workers = worker_pids(daemon)
    per = {pid: proc_status(pid) for pid in [daemon, *workers]}
    return {
        "workers": len(workers),
        "threads": sum(p["threads"] for p in per.values()),
        "rss_kb": sum(p["rss_kb"] for p in per.values()),
        "daemon": per[daemon],
        "worker_detail": [per[pid] for pid in workers],
    }


def show(label: str, snap: dict[str, Any]) -> None:
    d = snap["daemon"]
    print(f"{label}: daemon threads={d['threads']} rss={d['rss_kb'] / 1024:.1f} MB "
          f"fds={d['fds']}; workers={snap['workers']} "
          + " ".join(f"[threads={w['threads']} rss={w['rss_kb'] / 1024:.1f} MB fds={w['fds']}]"
                     for w in snap["worker_detail"])
          + f"; total threads={snap['threads']} rss={snap['rss_kb'] / 1024:.1f} MB")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def healthz_latencies(client: httpx.Client, count: int) -> list[float]:
    out = []
    for _ in range(count):
        started = time.perf_counter()
        r = client.get("/healthz")
        out.append(time.perf_counter() - started)
        r.raise_for_status()
        time.sleep(0.005)
    return out


def report_latency(label: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(f"{label}: n={len(ms)} p50={percentile(ms, 0.5):.1f} ms "
          f"p99={percentile(ms, 0.99):.1f} ms max={max(ms):.1f} ms "
          f"mean={statistics.mean(ms):.1f} ms")


class Daemon:
    def __init__(self, data: Path, log: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "WAGATE_DATA_DIR": str(data), "WAGATE_PORT": str(self.port),
                    "WAGATE_DRIVER": "neonize", "WAGATE_SERVER_ACCESS_LOG": "off", **env}
        self.log = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway", "serve"], cwd=ROOT,
                                     env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"daemon exited early; see {log}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise SystemExit("daemon did not come up")

    def terminate(self) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self.log.close()
        return code, time.monotonic() - started


def create_devices(client: httpx.Client, key: str, user: str, n: int, tag: str) -> list[str]:
    ids = []
    for i in range(n):
        r = client.post("/partner/devices", json={"device_name": f"{tag} {i}"},
                        headers={"x-api-key": key, "x-user-token": user})
        r.raise_for_status()
        ids.append(r.json()["session_id"])
    return ids


def statuses(client: httpx.Client, key: str, ids: list[str]) -> list[dict[str, Any]]:
    out = []
    for sid in ids:
        r = client.get(f"/partner/devices/{sid}/status", headers={"x-api-key": key})
        r.raise_for_status()
        out.append(r.json())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--keep", action="store_true", help="keep the temporary data directory")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra environment for the daemon, e.g. WAGATE_LOG_LEVEL=debug")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="wagate-bench-"))
    data = tmp / "data"
    log = tmp / "daemon.log"
    # The bench polls 50 statuses in a loop: the per-key API rate limit is not what it measures.
    env = {"WAGATE_NEONIZE_WORKER_IDLE_SECONDS": "2", "WAGATE_SECURITY_API_RATE_PER_MINUTE": "0",
           **dict(item.split("=", 1) for item in args.env)}
    print(f"data dir {data}; daemon log {log}")
    daemon = Daemon(data, log, env)
    try:
        failures = run(daemon, data, args)
    finally:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    for failure in failures:
        print(f"FAILED: {failure}")
    if failures:
        raise SystemExit(1)
    print("all acceptance checks passed")


def run(daemon: Daemon, data: Path, args: argparse.Namespace) -> list[str]:
    """Run the scenario; the acceptance checks that failed (issue 7's targets)."""
    failures: list[str] = []
    n = args.devices
    pid = daemon.proc.pid
    client = httpx.Client(base_url=daemon.url, timeout=30)
    r = client.post("/partner/register", json={"name": "Bench", "email": "bench@example.com",
                                               "domain": "bench.example"})
    r.raise_for_status()
    key = r.json()["api_key"]
    r = client.post("/partner/users", json={"label": "bench", "email": "b@example.com"},
                    headers={"x-api-key": key})
    r.raise_for_status()
    user = r.json()["user_token"]

    idle = snapshot(pid)
    show("idle (no devices)", idle)

    # /healthz from a second connection while the devices are being created and first fail.
    during: list[float] = []
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(base_url=daemon.url, timeout=30) as c:
            while not stop.is_set():
                started = time.perf_counter()
                c.get("/healthz").raise_for_status()
                during.append(time.perf_counter() - started)
                time.sleep(0.01)

    poller = threading.Thread(target=poll)
    poller.start()
    started = time.monotonic()
    ids = create_devices(client, key, user, n, "bench")
    created = time.monotonic() - started
    deadline = time.monotonic() + 120
    while True:
        sts = statuses(client, key, ids)
        failing = [s for s in sts if s["last_error"]]
        if len(failing) == n or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    all_failed = time.monotonic() - started
    stop.set()
    poller.join()
    print(f"created {n} devices in {created:.2f}s; all showed their error after "
          f"{all_failed:.2f}s")
    by_status: dict[str, int] = {}
    for s in sts:
        by_status[s["status"]] = by_status.get(s["status"], 0) + 1
    print(f"statuses: {by_status}; e.g. last_error={sts[0]['last_error']!r}")
    report_latency("/healthz while creating", during)

    latencies = healthz_latencies(client, args.requests)
    report_latency("/healthz while retrying", latencies)
    if percentile(latencies, 0.99) >= 0.1:
        failures.append("/healthz p99 >= 100 ms while retrying")
    if any(not s["last_error"] for s in sts):
        failures.append("a device's status does not say why it is not connected")
    loaded = snapshot(pid)
    show(f"{n} devices retrying", loaded)
    print(f"per device: {(loaded['threads'] - idle['threads']) / n:.2f} threads, "
          f"{(loaded['rss_kb'] - idle['rss_kb']) / 1024 / n:.2f} MB RSS "
          f"(including {loaded['workers']} worker base(s))")
    if loaded["worker_detail"]:
        base = 64 * 1024 * loaded["workers"]
        print(f"per device excluding ~64 MB per worker base: "
              f"{(loaded['rss_kb'] - idle['rss_kb'] - base) / 1024 / n:.2f} MB")
    stores = list((data / "neonize").glob("*.db"))
    print(f"store files: {len(stores)}")

    started = time.monotonic()
    for sid in ids:
        client.delete(f"/partner/devices/{sid}", headers={"x-api-key": key}).raise_for_status()
    remaining = sorted(p.name for p in (data / "neonize").iterdir())
    print(f"deleted {n} devices in {time.monotonic() - started:.2f}s; files left in "
          f"data/neonize: {remaining}")
    if remaining:
        failures.append("store files left after deleting every device")
    deadline = time.monotonic() + 30
    while worker_pids(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    after = snapshot(pid)
    show("after deleting", after)
    print(f"threads vs idle: {after['threads'] - idle['threads']:+d}; workers left: "
          f"{after['workers']}")
    if after["workers"] or after["threads"] > idle["threads"]:
        failures.append("threads or workers left after deleting every device")

    ids = create_devices(client, key, user, n, "again")
    time.sleep(3)
    show(f"{n} devices again, before SIGTERM", snapshot(pid))
    workers = worker_pids(pid)
    code, took = daemon.terminate()
    print(f"SIGTERM with {n} devices retrying: exit code {code} after {took:.2f}s")
    left = [w for w in workers if Path(f"/proc/{w}").exists()]
    print(f"worker processes left after exit: {left}")
    if took > 10:
        failures.append("SIGTERM took longer than 10 s")
    if left:
        failures.append("worker processes outlived the daemon")
    client.close()
    return failures


if __name__ == "__main__":
    main()
