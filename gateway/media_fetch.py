"""Fetching a message's media from a URL the client gave, before the message is accepted.

Fetched at accept time, not at send time: the client learns at once that a URL is dead, too
large or the wrong type (and nothing is queued), and a queued message no longer depends on a
URL that may expire before the device reconnects. Every hop (redirects included) goes through
the SSRF guard, pinned to the address it vetted; the body is read up to the size limit and no
further; the whole fetch has one deadline.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from gateway.errors import PayloadTooLarge, Unprocessable
from gateway.ssrf import TargetRefused, vet

MAX_REDIRECTS = 5
SETTING = "delivery.media_allow_private"


class MediaFetchFailed(Unprocessable):
    code = "media_fetch_failed"


@dataclass(frozen=True)
class Fetched:
    data: bytes
    filename: str | None  # from Content-Disposition or the URL's last path segment


async def fetch_media(client: httpx.AsyncClient, url: str, *, limit: int, deadline: float,
                      allow_private: bool) -> Fetched:
    """GET `url` (following up to 5 redirects, each vetted) and return at most `limit` bytes."""
    try:
        async with asyncio.timeout(deadline):
            for _ in range(MAX_REDIRECTS + 1):
                try:
                    target = await vet(url, allow_private=allow_private, allow_http=True,
                                       setting=SETTING)
                except TargetRefused as exc:
                    raise Unprocessable(f"media_url: {exc.message.removeprefix('url: ')}",
                                        code="media_url_refused", field="media_url") from None
                async with client.stream(
                        "GET", target.url, headers={"host": target.host_header},
                        extensions={"sni_hostname": target.sni}) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = urljoin(url, response.headers["location"])
                        continue
                    if response.status_code != 200:
                        raise MediaFetchFailed(
                            f"media_url: the server answered {response.status_code}",
                            field="media_url", upstream_status=response.status_code)
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > limit:
                        raise _too_large(limit)
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in response.aiter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise _too_large(limit)
                        chunks.append(chunk)
                    return Fetched(b"".join(chunks), _filename(response, url))
            raise MediaFetchFailed(f"media_url: more than {MAX_REDIRECTS} redirects",
                                   field="media_url")
    except TimeoutError:
        raise MediaFetchFailed(f"media_url: no complete answer within {deadline:g}s",
                               field="media_url") from None
    except httpx.HTTPError as exc:
        raise MediaFetchFailed(f"media_url: {type(exc).__name__}: {exc}"[:300],
                               field="media_url") from None


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"media_url: the file is over the {limit}-byte limit",
                           code="media_too_large", limit=limit)


def _filename(response: httpx.Response, url: str) -> str | None:
    disposition = response.headers.get("content-disposition", "")
    for part in disposition.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "filename" and value:
            return str(value).strip('"')
    last = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return last or None
