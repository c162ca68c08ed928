"""Why the webhook sender uses aiohttp: CPU per small POST, httpx against aiohttp.

Starts a bare Starlette receiver (uvicorn, its own process) and sends the same signed-size
webhook body from 16 concurrent tasks, on uvloop as the daemon runs, with:
- `httpx.AsyncClient.stream` (what the sender used before),
- httpx's transport called directly (no client layers: cookies, redirects, auth),
- `aiohttp.ClientSession` (what the sender uses now).
Prints requests/s and this process's CPU per request for each.

    .venv/bin/python bench/webhook_client.py [--requests 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import httpx
import uvloop
from send import free_port, wait_up  # bench/ is on sys.path when run as a script

CONCURRENCY = 16
BODY = (b'{"id":"evt_0123456789abcdef01234567","type":"message.sent","timestamp":'
        b'"2026-11-25T00:00:00Z","data":{"message_id":"msg_x","session_id":"dev_x",'
        b'"to":"919876543210","kind":"text","status":"sent"}}')
HEADERS = {"content-type": "application/json", "webhook-id": "evt_0123456789abcdef01234567",
           "webhook-timestamp": "1795000000", "webhook-signature": "v1," + "A" * 44}
RECEIVER = """
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

async def hook(request):
    await request.body()
    return PlainTextResponse("ok")

app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
"""


async def measure(requests: int, one: Callable[[], Awaitable[None]]) -> str:
    left = requests

    async def worker() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await one()

    await one()  # connect outside the measurement
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return f"{requests / wall:7.0f} req/s   {cpu / requests * 1e6:6.0f} us CPU per request"


async def run(url: str, requests: int) -> None:
    async with httpx.AsyncClient() as client:
        async def httpx_client() -> None:
            async with client.stream("POST", url, content=BODY, headers=HEADERS) as response:
                async for _ in response.aiter_bytes():
                    break

        print("httpx AsyncClient     ", await measure(requests, httpx_client))

    transport = httpx.AsyncHTTPTransport()

    async def httpx_transport() -> None:
        response = await transport.handle_async_request(
            httpx.Request("POST", url, content=BODY, headers=HEADERS))
        try:
            async for _ in response.aiter_raw():
                break
        finally:
            await response.aclose()

    print("httpx transport only  ", await measure(requests, httpx_transport))
    await transport.aclose()

    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        async def aiohttp_session() -> None:
            async with session.post(url, data=BODY, headers=HEADERS,
                                    allow_redirects=False) as response:
                await response.content.read(1024)

        print("aiohttp ClientSession ", await measure(requests, aiohttp_session))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="wagate-bench-"))
    (work / "receiver.py").write_text(RECEIVER)
    port = free_port()
    receiver = subprocess.Popen([sys.executable, "-m", "uvicorn", "receiver:app", "--port",
                                 str(port), "--no-access-log", "--log-level", "warning"],
                                cwd=work)
    try:
        wait_up(f"http://127.0.0.1:{port}/")
        print(f"{args.requests} POSTs of {len(BODY)} bytes, {CONCURRENCY} at once, uvloop, "
              "loopback receiver")
        uvloop.run(run(f"http://127.0.0.1:{port}/hook", args.requests))
    finally:
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
