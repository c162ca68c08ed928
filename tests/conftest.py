"""Fixtures that run the real daemon: real app, real SQLite store, real HTTP over loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.app import create_app
from gateway.config import Config, load_config
from gateway.tls import client_context
from tests.loopback import Loopback

# A simulated WhatsApp fast enough for tests: QR codes rotate in a fraction of a second.
FAST = {
    "WAGATE_SIMULATED_QR_FIRST_SECONDS": "0.6",
    "WAGATE_SIMULATED_QR_NEXT_SECONDS": "0.3",
    "WAGATE_SIMULATED_CONNECT_SECONDS": "0.01",
    "WAGATE_SIMULATED_RECONNECT_SECONDS": "0.05",
    "WAGATE_SIMULATED_SEND_SECONDS": "0",
    "WAGATE_SIMULATED_DELIVERED_SECONDS": "0.05",
    "WAGATE_SIMULATED_READ_SECONDS": "0.05",
    "WAGATE_SESSIONS_BACKOFF_INITIAL": "0.05",
    "WAGATE_SESSIONS_BACKOFF_MAX": "0.2",
    "WAGATE_SERVER_SHUTDOWN_TIMEOUT": "4",
    "WAGATE_DRIVER": "simulated",
    "WAGATE_DELIVERY_RATE_PER_MINUTE": "0",
    "WAGATE_DELIVERY_RETRY_INITIAL": "0.05",
    # Tests poll hard from one address: limits high enough never to bite, still charged (so
    # every response carries X-RateLimit-*); tests/test_security.py tests the real ones.
    "WAGATE_SECURITY_API_RATE_PER_MINUTE": "100000",
    "WAGATE_SECURITY_SEND_RATE_PER_MINUTE": "100000",
    "WAGATE_SECURITY_REGISTER_PER_HOUR": "100000",
    "WAGATE_SECURITY_LINK_PAGE_PER_MINUTE": "100000",
    "WAGATE_SECURITY_FAILED_AUTH_PER_MINUTE": "100000",
}


def make_config(data_dir: Path, **env: str) -> Config:
    return load_config(env={**FAST, "WAGATE_DATA_DIR": str(data_dir), **env})


async def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll an async predicate until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)


@dataclass
class Partner:
    key: str
    client: httpx.AsyncClient

    @property
    def headers(self) -> dict[str, str]:
        return {"x-api-key": self.key}

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    async def post(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.post(path, headers={**self.headers, **kw.pop("headers", {})},
                                      **kw)

    async def delete(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.delete(path, headers={**self.headers, **kw.pop("headers", {})},
                                        **kw)

    async def create_user(self, label: str = "John Doe") -> str:
        r = await self.post("/partner/users", json={"label": label, "email": "john@example.com"})
        assert r.status_code == 201, r.text
        return str(r.json()["user_token"])

    async def create_device(self, user_token: str | None = None,
                            name: str = "John iPhone") -> dict[str, Any]:
        user_token = user_token or await self.create_user()
        r = await self.post("/partner/devices", json={"device_name": name},
                            headers={"x-user-token": user_token})
        assert r.status_code == 201, r.text
        return {**r.json(), "user_token": user_token}

    async def status(self, session_id: str) -> dict[str, Any]:
        r = await self.get(f"/partner/devices/{session_id}/status")
        assert r.status_code == 200, r.text
        data: dict[str, Any] = r.json()
        return data

    async def wait_status(self, session_id: str, status: str, timeout: float = 5.0) -> None:
        async def check() -> bool:
            return (await self.status(session_id))["status"] == status

        await wait_for(check, timeout)

    async def link(self, session_id: str, phone: str = "919876543210") -> None:
        """Play the phone: wait for a QR code, scan it, wait for `connected`."""
        async def has_qr() -> bool:
            r = await self.get(f"/sim/devices/{session_id}")
            return r.json().get("qr") is not None

        await wait_for(has_qr)
        r = await self.post(f"/sim/devices/{session_id}/scan", json={"phone": phone})
        assert r.status_code == 200, r.text
        await self.wait_status(session_id, "connected")

    async def linked_device(self, name: str = "John iPhone") -> dict[str, Any]:
        device = await self.create_device(name=name)
        await self.link(device["session_id"])
        return device


@dataclass
class Gateway:
    config: Config
    url: str = ""
    client: httpx.AsyncClient = field(init=False)
    _server: Loopback | None = None

    async def start(self) -> None:
        self._server = Loopback(create_app(self.config), lifespan="on")
        await self._server.start(self.config.server.port if self.url else 0)
        self.url = self._server.url
        self.client = httpx.AsyncClient(base_url=self.url, timeout=10, verify=client_context())

    async def stop(self) -> None:
        await self.client.aclose()
        if self._server is not None:
            await self._server.stop()

    async def restart(self, **env: str) -> None:
        await self.stop()
        if env:
            self.config = make_config(Path(self.config.storage.data_dir), **env)
        # keep the URL's port so send URLs (built from public_url) stay valid
        port = int(self.url.rsplit(":", 1)[1])
        self.config = _with_port(self.config, port)
        await self.start()

    async def register(self, name: str = "ABC Reseller",
                       email: str = "abc@reseller.com") -> Partner:
        r = await self.client.post("/partner/register",
                                   json={"name": name, "email": email, "domain": "api.example"})
        assert r.status_code == 201, r.text
        return Partner(r.json()["api_key"], self.client)


def _with_port(config: Config, port: int) -> Config:
    from dataclasses import replace

    return replace(config, server=replace(config.server, port=port,
                                          public_url=f"http://127.0.0.1:{port}"))


async def start_gateway(data_dir: Path, env: Mapping[str, str] | None = None) -> Gateway:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    config = _with_port(make_config(data_dir, **dict(env or {})), port)
    gw = Gateway(config, url=f"http://127.0.0.1:{port}")
    await gw.start()
    return gw


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    gw = await start_gateway(tmp_path / "data")
    try:
        yield gw
    finally:
        await gw.stop()


@pytest.fixture
async def partner(gateway: Gateway) -> Partner:
    return await gateway.register()
