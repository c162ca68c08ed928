"""Refuse outbound targets inside the operator's network (SSRF), and pin the vetted address.

Used for webhook deliveries and for fetching media by URL.

The host is resolved once; every address must be public (`ipaddress.is_global`, which excludes
loopback, RFC 1918, link-local incl. 169.254.169.254, CGNAT 100.64/10, unique-local, reserved and
multicast). The request then goes to that address (with the original Host and TLS SNI), so a DNS
answer that changes between check and connect (rebinding) cannot redirect it.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from gateway.errors import Unprocessable


class TargetRefused(Unprocessable):
    code = "webhook_url_refused"


@dataclass(frozen=True)
class Target:
    url: str  # the URL with the vetted IP in place of the host
    host_header: str
    sni: str
    ip: str


def check_url(url: str, *, allow_http: bool) -> tuple[str, int]:
    """Shape checks that need no DNS: scheme, host, port, no credentials."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not allow_http):
        raise TargetRefused("url: must be https://" + (" or http://" if allow_http else ""))
    if not parts.hostname:
        raise TargetRefused("url: has no host")
    if parts.username or parts.password:
        raise TargetRefused("url: must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise TargetRefused("url: bad port") from None
    return parts.hostname, port


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_SITE_LOCAL = ipaddress.ip_network("fec0::/10")


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Global and not multicast, including any IPv4 address an IPv6 form carries (mapped,
    6to4, Teredo, NAT64, IPv4-compatible), which could reach the operator's network."""
    if not ip.is_global or ip.is_multicast:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _SITE_LOCAL:
            return False
        embedded = [ip.ipv4_mapped, ip.sixtofour, ip.teredo[1] if ip.teredo else None]
        if any(ip in net for net in _NAT64) or int(ip) >> 32 == 0:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        return all(_public(v4) for v4 in embedded if v4 is not None)
    return True


async def vet(url: str, *, allow_private: bool, allow_http: bool,
              setting: str = "webhooks.allow_private_targets") -> Target:
    host, port = check_url(url, allow_http=allow_http)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                                 type=socket.SOCK_STREAM)
        except socket.gaierror:
            raise TargetRefused(f"url: cannot resolve {host}") from None
        return _pin(url, host, port, frozenset(str(info[4][0]) for info in infos),
                    allow_private, setting)
    # A literal: nothing to resolve, so the answer never changes (a webhook's every attempt).
    return _pin_literal(url, host, port, allow_private, setting)


@functools.lru_cache(maxsize=1024)
def _pin_literal(url: str, host: str, port: int, allow_private: bool, setting: str) -> Target:
    return _pin(url, host, port, frozenset((str(ipaddress.ip_address(host)),)), allow_private,
                setting)


def _pin(url: str, host: str, port: int, addresses: frozenset[str], allow_private: bool,
         setting: str) -> Target:
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%")[0])
        if not allow_private and not _public(ip):
            raise TargetRefused(
                f"url: {host} resolves to {ip}, a private or reserved address; an operator can "
                f"allow such targets with {setting}")
    chosen = sorted(addresses)[0]
    netloc = f"[{chosen}]" if ":" in chosen else chosen
    parts = urlsplit(url)
    pinned = parts._replace(netloc=f"{netloc}:{port}").geturl()
    shown = f"[{host}]" if ":" in host else host  # an IPv6 literal needs its brackets
    return Target(pinned, shown if parts.port is None else f"{shown}:{port}", host, chosen)
