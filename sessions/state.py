"""Device states, in one place (compare Home Assistant's ConfigEntryState)."""

from __future__ import annotations

from enum import StrEnum


class DeviceStatus(StrEnum):
    NEW = "new"  # created; no pairing asked for yet
    PAIRING = "pairing"  # QR codes (or a pairing code) are being shown
    CONNECTING = "connecting"  # linked; connection being set up
    CONNECTED = "connected"  # linked and able to send
    DISCONNECTED = "disconnected"  # linked; connection lost, retrying (see last_error)
    UNLINKED = "unlinked"  # not linked and not pairing (e.g. the QR codes expired)
    LOGGED_OUT = "logged_out"  # unlinked from the phone or by logout; needs a new QR
    BANNED = "banned"  # temporarily banned by WhatsApp; retried when the ban expires
    REPLACED = "replaced"  # another client took the session over; restart to take it back


LINKED_STATES = frozenset(
    {DeviceStatus.CONNECTING, DeviceStatus.CONNECTED, DeviceStatus.DISCONNECTED,
     DeviceStatus.BANNED, DeviceStatus.REPLACED})
