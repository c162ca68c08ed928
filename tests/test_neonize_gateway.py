"""The whole daemon on the neonize driver, offline: the acceptance of issue 7 in miniature.

No WhatsApp server is reachable, so a new device can never show a QR code: its status must say
it is pairing and why it cannot (the dial error), the API must stay fast while it retries,
deleting it must leave no store file and no worker process, and shutdown must be quick.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Partner, start_gateway, wait_for

WORKER_MODULE = b"sessions.drivers.neonize.worker"


def worker_pids(parent: int | None = None) -> list[int]:
    """Worker processes started by this process, from /proc."""
    parent = os.getpid() if parent is None else parent
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and WORKER_MODULE in cmdline:
            pids.append(int(entry))
    return pids


def dial_failing(partner: Partner, session_id: str) -> Callable[[], Awaitable[Any]]:
    """A `wait_for` predicate: the device's status once its last error is the dial failure."""
    async def check() -> dict[str, Any] | None:
        status = await partner.status(session_id)
        return status if "failed to dial" in str(status["last_error"]) else None

    return check


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc")
async def test_offline_device_retries_visibly_and_deletes_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "data"
    gw = await start_gateway(data, env={"WAGATE_DRIVER": "neonize",
                                        "WAGATE_NEONIZE_WORKER_IDLE_SECONDS": "0.5"})
    stopped = False
    try:
        r = await gw.client.get("/healthz")
        assert r.json()["driver"] == "neonize"
        partner = await gw.register()
        device = await partner.create_device()
        session_id = device["session_id"]

        status = await wait_for(dial_failing(partner, session_id), timeout=20)
        assert status["status"] == "pairing"
        assert "dial tcp" in str(status["last_error"])
        assert (data / "neonize" / f"{session_id}.db").is_file()
        assert worker_pids()  # the device runs in a worker process, not in the daemon

        r = await partner.get(f"/partner/devices/{session_id}/qr")
        body = r.json()
        assert body["type"] == "pending"
        assert "failed to dial" in body["last_error"]

        latencies = []
        for _ in range(50):
            started = time.perf_counter()
            r = await gw.client.get("/healthz")
            latencies.append(time.perf_counter() - started)
            assert r.status_code == 200
        latencies.sort()
        # not a speed target (bench/devices.py measures that): the API is not starved by retries
        assert latencies[len(latencies) // 2] < 1.0, latencies

        r = await partner.delete(f"/partner/devices/{session_id}")
        assert r.status_code == 200, r.text
        assert list((data / "neonize").iterdir()) == []

        async def no_workers() -> bool:
            return not worker_pids()

        await wait_for(no_workers, timeout=10)  # an idle worker exits: no thread left behind

        # A second device brings a worker back; shutdown must stop it within the budget.
        second = await partner.create_device(name="Second")
        await wait_for(dial_failing(partner, second["session_id"]), timeout=20)
        pids = worker_pids()
        assert pids
        started = time.monotonic()
        stopped = True
        await gw.stop()
        assert time.monotonic() - started < 10
        await asyncio.sleep(0)
        assert not worker_pids()
    finally:
        if not stopped:
            await gw.stop()
