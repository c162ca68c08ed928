"""`wagate doctor --live`: link a real phone and send one message, outside the daemon.

For an operator on the host, not for CI (WhatsApp must be reachable). It runs the neonize
driver directly with a throw-away WhatsApp store in a temporary directory, so it never touches
the daemon's devices or data directory, and it unlinks the phone again at the end.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import TextIO

from gateway.config import Config
from gateway.errors import DriverError
from gateway.phone import normalize_phone
from gateway.qr import qr_text
from sessions.drivers.base import DeviceRef, Driver, OutgoingMessage
from sessions.events import (
    Banned,
    Connected,
    ConnectFailed,
    DriverEvent,
    LoggedOut,
    PairSuccess,
    QRCode,
    QRTimeout,
    Receipt,
)


async def live_check(config: Config, to: str, text: str, out: TextIO, *,
                     wait: float = 300.0, driver: Driver | None = None) -> bool:
    """Pair, send `text` to `to`, print receipts; True once WhatsApp acknowledged the send."""
    recipient = normalize_phone(to)
    with tempfile.TemporaryDirectory(prefix="wagate-live-") as scratch:
        if driver is None:
            from sessions.drivers.neonize import NeonizeDriver

            driver = NeonizeDriver(config.neonize, Path(scratch))
        events: asyncio.Queue[DriverEvent] = asyncio.Queue()
        await driver.start()
        session = driver.open_session(DeviceRef("live-check", None), events.put_nowait)
        sent_id: str | None = None
        deadline = time.monotonic() + wait
        try:
            try:
                await session.connect()
            except DriverError as exc:
                print(f"connect failed: {exc.reason}", file=out)
                return False
            while time.monotonic() < deadline:
                try:
                    event = await asyncio.wait_for(events.get(), deadline - time.monotonic())
                except TimeoutError:
                    break
                match event:
                    case QRCode(code, expires_in):
                        print(qr_text(code), file=out)
                        print(f"Scan with WhatsApp > Linked devices (code valid {expires_in:g}s)",
                              file=out)
                    case PairSuccess(phone, jid):
                        print(f"linked to +{phone} ({jid})", file=out)
                    case Connected() if sent_id is None:
                        print(f"connected; sending to +{recipient}", file=out)
                        try:
                            sent_id = await session.send(
                                OutgoingMessage("text", recipient, text), None)
                        except DriverError as exc:
                            print(f"send failed: {exc.reason}", file=out)
                            return False
                        print(f"sent, WhatsApp id {sent_id}; waiting for receipts", file=out)
                    case Receipt(wa_ids, status) if sent_id in wa_ids:
                        print(f"receipt: {status}", file=out)
                        if status in ("read", "played"):
                            break
                    case ConnectFailed(reason) | LoggedOut(reason):
                        print(f"stopped: {reason}", file=out)
                        return sent_id is not None
                    case Banned(reason, _):
                        print(f"banned: {reason}", file=out)
                        return False
                    case QRTimeout():
                        print("the QR codes expired before a scan", file=out)
                        return False
            return sent_id is not None
        finally:
            if sent_id is not None:
                try:
                    await session.logout()
                    print("unlinked the check's device from the phone", file=out)
                except DriverError as exc:
                    print(f"logout: {exc.reason} (remove 'wagate' under Linked devices)",
                          file=out)
            await session.close()
            await driver.stop()
