"""Message ids shaped like WhatsApp's, so one id can follow a message end to end."""

from __future__ import annotations

from gateway.ids import RandomHex

_hex18 = RandomHex(9, upper=True)


def new_message_id() -> str:
    """3EB0 + 18 upper-case hex digits, as WhatsApp Web clients generate."""
    return "3EB0" + _hex18()
