"""Web chat frames: parse what a visitor's browser sends, build what the server answers.
Pure functions over JSON text; the socket handling lives in `server.py`, and the frame
catalogue is documented in the package docstring."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Client ids are UUIDs in the widget; anything short and URL-safe is accepted from other clients.
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# secrets.token_urlsafe(32) gives 43 characters; older or foreign tokens are simply replaced.
SESSION_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")
LANGS = frozenset({"fa", "en"})
# JSON may escape half of a surrogate pair alone ("\ud83d": an emoji cut in two by a client);
# such text cannot be encoded as UTF-8, so it is shown as a replacement character instead.
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Hello:
    session: str | None
    name: str = ""
    lang: str = "fa"


@dataclass(frozen=True, slots=True)
class ChatText:
    client_id: str
    text: str


class FrameError(Exception):
    """A frame the server refuses; becomes an `error` frame, the connection stays open."""

    def __init__(self, code: str, detail: str, client_id: str | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.client_id = client_id


def parse_client_frame(raw: str | bytes, max_chars: int) -> Hello | ChatText:
    try:
        frame = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError("bad_json", f"frame is not JSON: {exc}") from None
    except RecursionError:
        raise FrameError("bad_json", "frame is nested too deeply") from None
    if not isinstance(frame, dict):
        raise FrameError("bad_json", "frame must be a JSON object")
    kind = frame.get("type")
    if kind == "hello":
        return _hello(frame)
    if kind == "message":
        return _chat_text(frame, max_chars)
    raise FrameError("bad_frame", f"unknown frame type {kind!r}; expected 'hello' or 'message'")


def _hello(frame: Mapping[str, Any]) -> Hello:
    session = frame.get("session")
    name = frame.get("name") or ""
    lang = frame.get("lang") or "fa"
    if not isinstance(name, str) or not isinstance(lang, str):
        raise FrameError("bad_frame", "hello: name and lang must be strings")
    # An unknown or malformed token is not an error: the visitor just starts a new session.
    token = session if isinstance(session, str) and SESSION_TOKEN.fullmatch(session) else None
    return Hello(token, _text(name).strip()[:100], lang if lang in LANGS else "fa")


def _chat_text(frame: Mapping[str, Any], max_chars: int) -> ChatText:
    client_id = frame.get("client_id")
    if not isinstance(client_id, str) or not CLIENT_ID.fullmatch(client_id):
        raise FrameError("bad_frame", "message: client_id must be 1-64 characters of A-Z a-z 0-9 _ -")
    text = frame.get("text")
    if not isinstance(text, str) or not text.strip():
        raise FrameError("bad_frame", "message: text must be a non-empty string", client_id)
    if len(text) > max_chars:
        raise FrameError("too_long", f"message has {len(text)} characters; the limit is {max_chars}", client_id)
    return ChatText(client_id, _text(text))


def _text(value: str) -> str:
    return _LONE_SURROGATE.sub("\ufffd", value)


# -- server frames --------------------------------------------------------------------------------


def encode(frame: Mapping[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


def welcome(session: str, history: list[dict[str, Any]] | None) -> dict[str, Any]:
    """`history` None means it could not be read now (the widget keeps what it shows)."""
    return {"type": "welcome", "session": session, "history": history}


def ack(client_id: str) -> dict[str, Any]:
    return {"type": "ack", "client_id": client_id}


def reply(message_id: str, text: str, at: str) -> dict[str, Any]:
    return {"type": "reply", "id": message_id, "text": text, "at": at}


def error(code: str, detail: str, client_id: str | None = None, retry_after: float | None = None) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "error", "code": code, "detail": detail}
    if client_id is not None:
        frame["client_id"] = client_id
    if retry_after is not None:
        frame["retry_after"] = round(retry_after, 1)
    return frame


def history_items(rows: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The store's conversation rows as the widget shows them. A visitor's message carries its
    client id (so the widget can drop it from its resend queue); an agent reply carries the id it
    was pushed with. Web-chat replies not yet delivered are left out: they arrive live."""
    items = []
    for row in rows:
        outgoing = row["direction"] == "out"
        message_id = row.get("channel_message_id") or ""
        if outgoing and row.get("channel") == "webchat" and not message_id:
            continue
        items.append({
            "id": message_id or f"m{row['id']}",
            "direction": "out" if outgoing else "in",
            "text": row.get("display_text") or "",
            "at": row.get("created_at") or "",
        })
    return items
