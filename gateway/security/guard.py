"""The per-process security state the HTTP handlers share, and the checks they call.

- `charge()`: take one token from a bucket (an API key's, a send URL's, an address's on a
  public route); the bucket's state goes out as X-RateLimit-* headers on the response
  (`gateway.security.middleware`), an empty bucket is `429 rate_limited` with Retry-After.
- `check_blocked()` / `lookup_failed()`: the brute-force guard on credential lookups.
- `partner_allowed()`: suspended and pending partners are refused (403).
- `Security.partner()`: a partner's status and limits for the send path, cached for
  `PARTNER_TTL` seconds (a change made through `/admin` in this process applies at once; one
  made by another process sharing the database within the TTL).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from gateway.config import SecurityConfig
from gateway.errors import Forbidden, TooManyRequests
from gateway.security.ratelimit import Buckets, FailureGuard, RateInfo
from gateway.store.base import ApiKey, Partner

if TYPE_CHECKING:
    from gateway.store import Store

PARTNER_TTL = 5.0
TOUCH_EVERY = 60.0  # last_used_at is written at most this often per key
PARTNER_CACHE_MAX = 10_000


class Security:
    def __init__(self, config: SecurityConfig | None = None) -> None:
        self.config = config or SecurityConfig()
        self.buckets = Buckets()
        self.failures = FailureGuard()
        self._partners: dict[int, tuple[Partner, float]] = {}
        self._touched: dict[int, float] = {}

    async def partner(self, store: Store, partner_id: int, now: float) -> Partner | None:
        entry = self._partners.get(partner_id)
        if entry is not None and entry[1] > now:
            return entry[0]
        partner = await store.partner_by_id(partner_id)
        if partner is not None:
            if len(self._partners) >= PARTNER_CACHE_MAX:
                self._partners.clear()
            self._partners[partner_id] = (partner, now + PARTNER_TTL)
        return partner

    def forget_partner(self, partner_id: int) -> None:
        self._partners.pop(partner_id, None)

    def should_touch(self, key: ApiKey, now: float) -> bool:
        """Whether to record this use as the key's last_used_at (coalesced per minute)."""
        last = max(self._touched.get(key.id, 0.0), key.last_used_at or 0.0)
        if now - last < TOUCH_EVERY:
            return False
        if len(self._touched) >= PARTNER_CACHE_MAX:
            self._touched.clear()
        self._touched[key.id] = now
        return True


def security(conn: HTTPConnection) -> Security:
    sec: Security = conn.app.state.services.security
    return sec


def client_ip(conn: HTTPConnection) -> str:
    """The client's address (uvicorn takes it from X-Forwarded-For when the proxy is trusted,
    see uvicorn's forwarded_allow_ips)."""
    return conn.client.host if conn.client else "unknown"


def check_blocked(conn: HTTPConnection, now: float | None = None) -> None:
    sec = security(conn)
    wait = sec.failures.blocked_for(client_ip(conn), time.time() if now is None else now)
    if wait:
        raise TooManyRequests("too many failed credential lookups from this address; retry "
                              f"in {wait}s", retry_after=wait)


def lookup_failed(conn: HTTPConnection, now: float | None = None) -> None:
    sec = security(conn)
    sec.failures.failed(client_ip(conn), time.time() if now is None else now,
                        sec.config.failed_auth_per_minute, sec.config.failed_auth_block_seconds)


def charge(conn: HTTPConnection, key: object, capacity: int, now: float, *,
           period: float = 60.0, what: str = "this API key") -> RateInfo | None:
    """One request against a bucket (`capacity` 0: unlimited, no headers)."""
    if capacity <= 0:
        return None
    info = security(conn).buckets.take(key, capacity, period, now)
    conn.state.ratelimit = info
    if not info.allowed:
        raise TooManyRequests(f"rate limit of {capacity} requests per "
                              f"{_period(period)} for {what} reached; retry in "
                              f"{info.retry_after}s", retry_after=info.retry_after)
    return info


def _period(seconds: float) -> str:
    return {60.0: "minute", 3600.0: "hour"}.get(seconds, f"{seconds:g} seconds")


def charge_ip(conn: HTTPConnection, route: str, capacity: int, period: float) -> None:
    """A per-address limit on a public route (registration, link pages)."""
    charge(conn, (route, client_ip(conn)), capacity, time.time(), period=period,
           what="this address")


def guard_link_page(conn: HTTPConnection) -> None:
    """Before a link-page lookup: the address is not blocked, and within
    `security.link_page_per_minute`."""
    check_blocked(conn)
    per_minute = security(conn).config.link_page_per_minute
    if per_minute:
        charge_ip(conn, "link", per_minute, 60.0)


def partner_allowed(partner: Partner) -> None:
    if partner.status == "active":
        return
    if partner.status == "pending":
        raise Forbidden("this partner account is waiting for the operator's approval",
                        code="partner_pending")
    reason = f": {partner.status_reason}" if partner.status_reason else ""
    raise Forbidden(f"this partner account is suspended{reason}", code="partner_suspended")
