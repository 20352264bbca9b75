"""A real SMTP server on loopback that keeps what it receives: the relay our outbound mail
goes through in tests and in the demo."""

from __future__ import annotations

import asyncio
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, Envelope, Session


class SmtpSink:
    def __init__(self, reply: str = "250 OK", rcpt_reply: str = "250 OK") -> None:
        self.received: list[tuple[Envelope, EmailMessage]] = []
        self.reply = reply
        self.rcpt_reply = rcpt_reply  # what RCPT TO is answered: "450 ..." greylists every recipient
        self.port = 0
        self._server: asyncio.AbstractServer | None = None
        self._arrived = asyncio.Event()

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if self.rcpt_reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self.rcpt_reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.reply.startswith("250"):
            msg = message_from_bytes(envelope.original_content or b"", policy=policy.default)
            self.received.append((envelope, msg))  # type: ignore[arg-type]
            self._arrived.set()
        return self.reply

    async def start(self) -> SmtpSink:
        self._server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(self, hostname="sink.test", decode_data=False), "127.0.0.1", 0
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server:
            self._server.close()
            await self._server.wait_closed()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.received) < count:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"expected {count} mails at the sink, got {len(self.received)}")
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                pass
        return [m for _, m in self.received]
