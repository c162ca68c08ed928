"""The send path without HTTP: the real app, raw ASGI calls, 64 concurrent in-process clients.

Separates the app's own cost from uvicorn's and wrk's (which share the two cores in
`bench/send.py`): prints accepted sends/s, CPU per request over all threads, and how long the
outbox took to drain into the simulated WhatsApp. `--no-dispatch` measures ingest alone.

    .venv/bin/python bench/send_app.py [--no-dispatch] [--requests 6000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from typing import Any

import httpx

from gateway.app import create_app
from gateway.config import load_config
from sessions.dispatch import Dispatcher

TO = "919876543210"
BODY = b'{"to":"' + TO.encode() + b'","message":"bench","async":true}'
CLIENTS = 64


async def link_device(app: Any) -> str:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
        key = (await http.post("/partner/register", json={"name": "bench", "email": "b@x.io"})
               ).json()["api_key"]
        h = {"x-api-key": key}
        user = (await http.post("/partner/users", headers=h, json={"label": "u"})
                ).json()["user_token"]
        dev = (await http.post("/partner/devices", headers={**h, "x-user-token": user},
                               json={"device_name": "bench"})).json()
        sid = dev["session_id"]
        while not (await http.get(f"/sim/devices/{sid}", headers=h)).json()["qr"]:
            await asyncio.sleep(0.05)
        await http.post(f"/sim/devices/{sid}/scan", headers=h, json={"phone": TO})
        while (await http.get(f"/partner/devices/{sid}/status", headers=h)
               ).json()["status"] != "connected":
            await asyncio.sleep(0.05)
    return "/" + str(dev["send_url"]).split("/", 3)[3]


async def run(requests: int, dispatch: bool, data_dir: str) -> None:
    if not dispatch:
        async def idle(self: Dispatcher) -> None:  # queued, never claimed while measuring
            await asyncio.Event().wait()

        Dispatcher.run = idle  # type: ignore[method-assign]
    env = {"WAGATE_DATA_DIR": data_dir,
           "WAGATE_DRIVER": "simulated", "WAGATE_DELIVERY_RATE_PER_MINUTE": "0",
           "WAGATE_SIMULATED_SEND_SECONDS": "0", "WAGATE_SIMULATED_CONNECT_SECONDS": "0.01",
           "WAGATE_SIMULATED_QR_FIRST_SECONDS": "5", "WAGATE_SERVER_ACCESS_LOG": "false",
           "WAGATE_LOG_LEVEL": "warning", "WAGATE_SECURITY_SEND_RATE_PER_MINUTE": "0"}
    app = create_app(load_config(env=env))
    async with app.router.lifespan_context(app):
        path = await link_device(app)
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "root_path": "", "query_string": b"", "client": ("127.0.0.1", 1),
                 "server": ("127.0.0.1", 80),
                 "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                             (b"content-length", str(len(BODY)).encode())]}
        statuses: dict[int, int] = {}

        async def one() -> None:
            delivered = False

            async def receive() -> dict[str, Any]:
                nonlocal delivered
                if delivered:
                    await asyncio.Event().wait()  # no disconnect while the handler runs
                delivered = True
                return {"type": "http.request", "body": BODY, "more_body": False}

            async def send(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses[message["status"]] = statuses.get(message["status"], 0) + 1

            await app(dict(scope, state={}), receive, send)

        async def client() -> None:
            for _ in range(requests // CLIENTS):
                await one()

        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        done = sum(statuses.values())
        print(f"accepted: {done / elapsed:8.0f} req/s, {cpu / done * 1e6:.0f} us CPU per request "
              f"(all threads), answers {statuses}")
        if dispatch:
            store = app.state.services.store
            while True:
                counts = await store.message_counts()
                if counts.get("queued", 0) + counts.get("sending", 0) == 0:
                    break
                await asyncio.sleep(0.05)
            total = time.perf_counter() - started
            print(f"end to end: {done / total:8.0f} msg/s (drained {total - elapsed:.2f} s after "
                  "the last answer)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--no-dispatch", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wagate-bench-") as data_dir:
        main_ = run(args.requests, not args.no_dispatch, data_dir)
        try:
            import uvloop
        except ImportError:
            asyncio.run(main_)
        else:
            uvloop.run(main_)


if __name__ == "__main__":
    main()
