"""Customers, from the outside: each channel spoken as the real sender would speak it, to a
running daemon on loopback — mail over SMTP (smtplib), SMS and WhatsApp as Twilio-signed
webhooks, call records as signed PBX JSON, web chat over the websocket, Telegram updates queued at
the Bot API stand-in for the daemon's poller. And what the customers get back, read from the
stand-ins the daemon's replies go to (SMTP sink, Twilio Messages API, Bot API)."""

from __future__ import annotations

import asyncio
import itertools
import json
import smtplib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from typing import Any, TypeVar

from aiohttp import ClientSession
from websockets.asyncio.client import ClientConnection, connect

from connectors.http_front import SIGNATURE_HEADER, hmac_sha256_hex
from connectors.standins.bot_api import StandInBot
from connectors.standins.smtp_sink import SmtpSink
from connectors.standins.twilio_api import TwilioApiStandIn, post_twilio_webhook

T = TypeVar("T")


class ChannelRefused(Exception):
    """The daemon did not take what a customer sent (status or reply in the message)."""


@dataclass(frozen=True, slots=True)
class DaemonAddresses:
    """Where a customer reaches the daemon, and the secrets the channel's provider signs with."""

    smtp_port: int
    http_base_url: str  # http://127.0.0.1:PORT, no trailing slash
    webchat_url: str  # ws://127.0.0.1:PORT
    claims_address: str  # the address customers mail
    sms_number: str  # our Twilio number, E.164
    whatsapp_number: str  # "whatsapp:+…"
    our_line: str  # the PBX number customers call
    twilio_token: str
    calls_secret: str


@dataclass(frozen=True, slots=True)
class TelegramUser:
    id: int
    first_name: str
    last_name: str = ""
    language_code: str = "fa"

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "is_bot": False, "first_name": self.first_name, "last_name": self.last_name,
                "language_code": self.language_code}


async def poll(find: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T | None:
    """`find()`'s first non-None answer, asked every `interval` s until `timeout`; else None."""
    deadline = time.monotonic() + timeout
    while True:
        found = find()
        if found is not None or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(interval)


class ChatVisitor:
    """One visitor with the chat widget open: says things and keeps what the desk pushes."""

    def __init__(self, ws: ClientConnection, session: str) -> None:
        self.session = session
        self.replies: list[str] = []
        self._ws = ws
        self._acks: dict[str, asyncio.Future[None]] = {}
        self._reader = asyncio.create_task(self._read(), name="chat-visitor")

    async def say(self, text: str, timeout: float = 10.0) -> None:
        """Send a message and wait for its ack (the daemon committed it)."""
        client_id = uuid.uuid4().hex
        self._acks[client_id] = asyncio.get_running_loop().create_future()
        await self._ws.send(json.dumps({"type": "message", "client_id": client_id, "text": text}, ensure_ascii=False))
        try:
            await asyncio.wait_for(self._acks[client_id], timeout)
        finally:
            self._acks.pop(client_id, None)

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)

    async def _read(self) -> None:
        async for raw in self._ws:
            frame = json.loads(raw)
            waiting = self._acks.get(frame.get("client_id", ""))
            if frame.get("type") == "reply":
                self.replies.append(frame.get("text", ""))
            elif waiting is not None and not waiting.done():
                if frame.get("type") == "ack":
                    waiting.set_result(None)
                else:
                    waiting.set_exception(ChannelRefused(f"chat message refused: {frame}"))


@dataclass
class Customers:
    daemon: DaemonAddresses
    http: ClientSession
    sink: SmtpSink
    twilio: TwilioApiStandIn
    bot: StandInBot
    _telegram_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _sids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    # -- writing -------------------------------------------------------------------------------

    async def email(self, sender: str, name: str, subject: str, text: str, *, in_reply_to: str = "") -> str:
        """Mail the claims desk over SMTP; returns the mail's Message-ID (without <>)."""
        mail = EmailMessage()
        mail["From"] = formataddr((name, sender))
        mail["To"] = self.daemon.claims_address
        mail["Subject"] = subject
        mail["Date"] = format_datetime(datetime.now(UTC))
        message_id = make_msgid(domain=sender.rpartition("@")[2])
        mail["Message-ID"] = message_id
        if in_reply_to:
            mail["In-Reply-To"] = mail["References"] = f"<{in_reply_to}>"
        mail.set_content(text)
        await asyncio.to_thread(self._submit, mail)
        return message_id.strip("<>")

    def _submit(self, mail: EmailMessage) -> None:
        with smtplib.SMTP("127.0.0.1", self.daemon.smtp_port, timeout=10) as client:
            refused = client.send_message(mail)
        if refused:
            raise ChannelRefused(f"SMTP refused {refused}")

    async def sms(self, phone: str, text: str) -> str:
        return await self._twilio_message(phone, self.daemon.sms_number, text)

    async def whatsapp(self, phone: str, text: str, profile_name: str = "") -> str:
        return await self._twilio_message(f"whatsapp:{phone}", self.daemon.whatsapp_number, text,
                                          ProfileName=profile_name)

    async def _twilio_message(self, sender: str, to: str, text: str, **extra: str) -> str:
        sid = f"SM{uuid.uuid4().hex}"
        form = {"MessageSid": sid, "SmsSid": sid, "AccountSid": self.twilio.account_sid, "From": sender, "To": to,
                "Body": text, "NumMedia": "0", "NumSegments": "1", "ApiVersion": "2010-04-01",
                **{k: v for k, v in extra.items() if v}}
        url = f"{self.daemon.http_base_url}/webhooks/twilio/messages"
        status, answer = await post_twilio_webhook(self.http, url, form, self.daemon.twilio_token)
        if status != 200:
            raise ChannelRefused(f"Twilio webhook answered {status}: {answer[:200]}")
        return sid

    async def call(self, caller: str, disposition: str, *, talked_seconds: int = 0) -> str:
        """The PBX reports a finished call (NO ANSWER, ANSWERED, BUSY...) as signed JSON."""
        call_id = f"{time.time():.2f}.{next(self._sids)}"
        start = datetime.now(UTC) - timedelta(seconds=talked_seconds + 20)
        record: dict[str, Any] = {"call_id": call_id, "caller": caller, "callee": self.daemon.our_line,
                                  "start": start.isoformat(), "disposition": disposition,
                                  "end": datetime.now(UTC).isoformat()}
        if disposition == "ANSWERED":
            record["answer"] = (start + timedelta(seconds=20)).isoformat()
        body = json.dumps(record).encode()
        headers = {"Content-Type": "application/json", SIGNATURE_HEADER: hmac_sha256_hex(self.daemon.calls_secret, body)}
        async with self.http.post(f"{self.daemon.http_base_url}/webhooks/calls", data=body, headers=headers) as resp:
            if resp.status != 200:
                raise ChannelRefused(f"call webhook answered {resp.status}: {(await resp.text())[:200]}")
        return call_id

    def telegram(self, user: TelegramUser, text: str = "", *, share_phone: str = "") -> int:
        """Queue a private-chat message at the Bot API stand-in (the daemon's poller fetches it):
        text, or the user's own contact shared with Telegram's "share my number" button."""
        message: dict[str, Any] = {"message_id": next(self._telegram_ids), "date": int(time.time()),
                                   "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
                                   "from": user.as_dict()}
        if share_phone:
            message["contact"] = {"phone_number": share_phone, "first_name": user.first_name,
                                  "last_name": user.last_name, "user_id": user.id}
        else:
            message["text"] = text
        return self.bot.push({"message": message})

    async def open_chat(self, name: str, lang: str = "fa") -> ChatVisitor:
        ws = await connect(self.daemon.webchat_url)
        await ws.send(json.dumps({"type": "hello", "session": None, "name": name, "lang": lang}, ensure_ascii=False))
        welcome = json.loads(await ws.recv())
        if welcome.get("type") != "welcome":
            await ws.close()
            raise ChannelRefused(f"chat hello refused: {welcome}")
        return ChatVisitor(ws, welcome["session"])

    # -- reading what came back ----------------------------------------------------------------

    def mail_to(self, address: str) -> list[EmailMessage]:
        return [mail for envelope, mail in self.sink.received if address in envelope.rcpt_tos]

    def texts_to(self, address: str) -> list[str]:
        """SMS (E.164) or WhatsApp ("whatsapp:+…") bodies the daemon sent this number."""
        return [form.get("Body", "") for form in self.twilio.sent if form.get("To") == address]

    def telegram_to(self, user: TelegramUser) -> list[str]:
        return [sent["text"] for sent in self.bot.sent if str(sent["chat_id"]) == str(user.id)]
