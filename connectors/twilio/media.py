"""Downloading the media a customer sent by MMS or WhatsApp.

Twilio keeps them at `MediaUrlN` on its API host, behind the account's credentials (HTTP basic
auth), and usually answers with a redirect to a short-lived CDN URL; aiohttp drops the
credentials when a redirect leaves the origin. A URL that is not on the configured API host is
refused rather than sent the account's credentials.
"""

from __future__ import annotations

from base64 import b64encode
from urllib.parse import urlsplit

import aiohttp

MEDIA_TIMEOUT = aiohttp.ClientTimeout(total=60)
_CHUNK = 64 * 1024


def same_origin(url: str, base_url: str) -> bool:
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


async def fetch_media(session: aiohttp.ClientSession, url: str, api_base_url: str, account_sid: str, token: str,
                      max_bytes: int) -> bytes:
    """The media's bytes; PermissionError for a URL off the API host, ValueError past
    `max_bytes` (read no further than that), aiohttp.ClientResponseError for a refusal."""
    if not same_origin(url, api_base_url):
        raise PermissionError(f"media URL {url!r} is not on the Twilio API host {api_base_url}")
    # The header rather than aiohttp's deprecated BasicAuth; aiohttp drops it all the same on a
    # redirect to another origin.
    credentials = b64encode(f"{account_sid}:{token}".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}"}
    async with session.get(url, headers=headers, timeout=MEDIA_TIMEOUT) as response:
        response.raise_for_status()
        if (response.content_length or 0) > max_bytes:
            raise ValueError(f"{response.content_length} bytes is over the {max_bytes}-byte attachment limit")
        data = bytearray()
        async for chunk in response.content.iter_chunked(_CHUNK):
            data += chunk
            if len(data) > max_bytes:
                raise ValueError(f"more than {max_bytes} bytes: over the attachment limit")
        return bytes(data)
