"""`wagate doctor --live`, driven against the simulated WhatsApp (the real one is unreachable)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from gateway.config import load_config
from gateway.live_check import live_check
from sessions.drivers.simulated import SimulatedDriver
from tests.conftest import FAST


async def test_live_check_pairs_sends_and_reads_receipts(tmp_path: Path) -> None:
    config = load_config(env={**FAST, "WAGATE_DATA_DIR": str(tmp_path)})
    driver = SimulatedDriver(config.simulated, tmp_path)
    out = io.StringIO()

    async def phone() -> None:  # the operator scans the QR shown in the terminal
        while "Scan with WhatsApp" not in out.getvalue():
            await asyncio.sleep(0.01)
        await driver.world.scan("live-check", "14155552671")

    scanner = asyncio.create_task(phone())
    ok = await live_check(config, "+91 98765 43210", "live check", out, wait=10,
                          driver=driver)
    await scanner
    text = out.getvalue()
    assert ok, text
    assert "█" in text
    assert "linked to +14155552671" in text
    assert "sending to +919876543210" in text
    assert "receipt: delivered" in text
    assert "receipt: read" in text
    assert "unlinked the check's device" in text


async def test_live_check_reports_an_unreachable_whatsapp(tmp_path: Path) -> None:
    config = load_config(env={"WAGATE_DATA_DIR": str(tmp_path)})
    out = io.StringIO()
    ok = await live_check(config, "919876543210", "x", out, wait=30)
    assert not ok
    assert "dial" in out.getvalue() or "failed" in out.getvalue()
