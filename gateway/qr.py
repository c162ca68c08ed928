"""QR codes as PNG data URLs (for the API) and as text (for an operator on SSH), via `qrcode`."""

from __future__ import annotations

import base64
import io

import qrcode
from qrcode.constants import ERROR_CORRECT_L


def _make(data: str) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_L, box_size=8, border=4)
    code.add_data(data)
    code.make(fit=True)
    return code


def qr_png(data: str) -> bytes:
    buf = io.BytesIO()
    _make(data).make_image().save(buf, format="PNG")
    return buf.getvalue()


def qr_data_url(data: str) -> str:
    return "data:image/png;base64," + base64.b64encode(qr_png(data)).decode()


def qr_text(data: str) -> str:
    """Half-block rendering that fits a terminal and scans from a phone."""
    out = io.StringIO()
    _make(data).print_ascii(out=out, invert=True)
    return out.getvalue()
