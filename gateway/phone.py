"""Recipient phone numbers: whatever a LAN device sends, normalised to E.164 by `phonenumbers`."""

from __future__ import annotations

import phonenumbers

from gateway.errors import Unprocessable


def normalize_phone(raw: str, field: str = "to") -> str:
    """E.164 digits without '+', the form WhatsApp JIDs use (919876543210).

    Accepts `919876543210`, `+91 98765 43210`, `0091…`, `whatsapp:+91…`. A number without '+' is
    read as international (a send URL has no home country to assume).
    """
    text = raw.strip()
    if text.lower().startswith("whatsapp:"):
        text = text[len("whatsapp:"):].strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+"):
        text = "+" + text
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise Unprocessable(f"{field}: not a phone number: {raw!r}", code="invalid_phone",
                            field=field) from None
    if not phonenumbers.is_valid_number(number):
        raise Unprocessable(f"{field}: not a valid international phone number: {raw!r}",
                            code="invalid_phone", field=field)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)[1:]
