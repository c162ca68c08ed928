"""Operations endpoints: OpenAPI in step with the routes, metrics, readiness, request ids."""

from __future__ import annotations

import asyncio
from typing import Any

from openapi_spec_validator import validate
from starlette.routing import Mount, Route

from gateway.app import build_routes
from gateway.recent import Recent
from tests.conftest import Gateway, Partner, wait_for

TO = "919876543210"


def served(routes: list[Any], prefix: str = "") -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":
                    found.add((prefix + route.path, method.lower()))
    return found


async def test_openapi_is_valid_3_1_and_lists_every_route(gateway: Gateway) -> None:
    r = await gateway.client.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["openapi"] == "3.1.0"
    validate(spec)
    documented = {(path, method) for path, item in spec["paths"].items()
                  for method in item if method in ("get", "post", "put", "patch", "delete")}
    routes = served(build_routes(gateway.config))
    assert routes - documented == set(), "routes served but not documented"
    assert documented - routes == set(), "routes documented but not served"
    mounts = [r.path for r in build_routes(gateway.config) if isinstance(r, Mount)]
    assert set(mounts) <= {"/docs/static", "/static"}


async def test_docs_page_is_served_from_packaged_assets(gateway: Gateway) -> None:
    page = await gateway.client.get("/docs")
    assert page.status_code == 200
    assert "swagger-ui-bundle.js" in page.text
    assert "http" not in page.text.split("<body>")[1].replace("/openapi.json", "")
    js = await gateway.client.get("/docs/static/swagger-ui-bundle.js")
    assert js.status_code == 200
    assert len(js.content) > 100_000


async def test_metrics_count_devices_and_messages(gateway: Gateway, partner: Partner) -> None:
    device = await partner.linked_device()
    r = await gateway.client.post(device["send_url"], json={"to": TO, "message": "hi"})
    assert r.status_code == 200

    async def counted() -> str | None:
        text = (await gateway.client.get("/metrics")).text
        return text if 'wagate_messages{status="read"} 1.0' in text else None

    text = await wait_for(counted)
    assert 'wagate_devices{state="connected"} 1.0' in text
    assert "wagate_queue_depth 0.0" in text
    assert 'route="/wa/{device_token}/send"' in text
    assert "dt_" not in text  # route templates, never raw paths with tokens


async def test_readyz_and_request_ids(gateway: Gateway) -> None:
    r = await gateway.client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "store": "writable", "sessions": "restored"}
    assert len(r.headers["x-request-id"]) == 16
    r = await gateway.client.get("/healthz", headers={"x-request-id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    r = await gateway.client.get("/healthz", headers={"x-request-id": "bad id <script>"})
    assert r.headers["x-request-id"] != "bad id <script>"


async def test_probes_and_scrapes_share_one_recent_check() -> None:
    calls = 0

    async def check() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return calls

    recent: Recent[int] = Recent(ttl=60)
    assert await asyncio.gather(*(recent.get(check) for _ in range(20))) == [1] * 20
    assert await recent.get(check) == 1
    fresh: Recent[int] = Recent(ttl=0)
    assert [await fresh.get(check) for _ in range(2)] == [2, 3]
