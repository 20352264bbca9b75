"""Signed bot deep links: `https://t.me/<bot>?start=PV-1405-000123_<signature>`.

A claim reference alone proves nothing (references are sequential); the signature, an HMAC-SHA256
under the store's own key over the bot and the reference, proves the link is one we handed out,
in the acknowledgement the claim's contact received. The start parameter stays within what the
Bot API passes on: at most 64 characters of `A-Z a-z 0-9 _ -`. Pure functions, no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

MAX_START_PARAMETER = 64
# 128 bits of the HMAC, as 22 characters of unpadded base64url (the alphabet `start` allows).
_SIGNATURE_BYTES = 16
SIGNATURE_CHARS = 22
_SEPARATOR = "_"


def bot_scope(channel: str, bot_id: str) -> str:
    """Which bot a link is for: a link handed out for one bot vouches on that bot only (Telegram
    and Bale number their bots, and their users, independently)."""
    return f"{channel}:{bot_id}"


def signature(key: bytes, scope: str, ref: str) -> str:
    digest = hmac.new(key, f"{scope}\n{ref}".encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES]
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def start_parameter(key: bytes, scope: str, ref: str) -> str:
    """`PV-1405-000123_<signature>` for the canonical reference `ref`."""
    parameter = f"{ref}{_SEPARATOR}{signature(key, scope, ref)}"
    if len(parameter) > MAX_START_PARAMETER:  # a 6-letter prefix gives 41; the config allows no more
        raise ValueError(f"start parameter for {ref!r} is over {MAX_START_PARAMETER} characters")
    return parameter


def split_start_parameter(parameter: str) -> tuple[str, str]:
    """(the reference as written, the signature or "" when the parameter carries none). The
    signature is told by its place and length: a reference typed with underscores stays whole."""
    cut = len(parameter) - SIGNATURE_CHARS - len(_SEPARATOR)
    if cut > 0 and parameter[cut:cut + len(_SEPARATOR)] == _SEPARATOR:
        return parameter[:cut], parameter[cut + len(_SEPARATOR):]
    return parameter, ""


def verify(key: bytes, scope: str, ref: str, given: str) -> bool:
    # As bytes: a hand-typed parameter may hold any character, which compare_digest refuses in a str.
    return bool(key and given) and hmac.compare_digest(signature(key, scope, ref).encode(), given.encode())
