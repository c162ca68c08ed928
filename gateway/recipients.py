"""The optional on-WhatsApp check: refuse a recipient without WhatsApp before queueing.

Sending to numbers that have no account is one of the patterns WhatsApp's anti-spam looks for,
and a message to such a number would only sit at `sent` forever. The answer comes from the
device's own connection (whatsmeow's IsOnWhatsApp) and is cached per device for
`delivery.recipient_check_ttl`, so a sender that messages the same numbers pays once.
"""

from __future__ import annotations

import time

from gateway.errors import DriverError, ServiceUnavailable, Unprocessable
from gateway.services import Services
from gateway.store import Device

CHECK_TIMEOUT = 10.0


async def require_on_whatsapp(svc: Services, device: Device, phone: str) -> None:
    ttl = svc.config.delivery.recipient_check_ttl
    known = await svc.store.recipient_checks(device.id, [phone], time.time() - ttl)
    if phone not in known:
        sup = svc.manager.get(device.id)
        try:
            if sup is None:
                raise DriverError("the device is not running")
            known = await sup.on_whatsapp([phone], CHECK_TIMEOUT)
        except DriverError as exc:
            raise ServiceUnavailable(
                f"cannot check whether {phone} has WhatsApp now ({exc.reason}); try again "
                "when the device is connected, or send without check", code="check_unavailable"
            ) from None
        await svc.store.save_recipient_checks(device.id, known)
    if not known.get(phone, False):
        raise Unprocessable(f"to: {phone} has no WhatsApp account; nothing was queued",
                            code="not_on_whatsapp", field="to")
