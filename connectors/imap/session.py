"""The blocking half of the IMAP connector: one logged-in IMAPClient with the folder selected.
Every method blocks and runs on the connector's own thread; only `interrupt()` is called from
the event loop, to wake a thread waiting in IDLE when the connector stops."""

from __future__ import annotations

import re
import selectors
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import structlog
from imapclient import IMAPClient

from connectors.imap.processed import ProcessedMark

log = structlog.get_logger(__name__)
_EXISTS = re.compile(rb"\* \d+ EXISTS\r?\n?$")  # untagged: a message arrived


class ImapSetupError(Exception):
    """The account cannot be used as configured (not a passing network fault): not retried."""


@dataclass(frozen=True, slots=True)
class ServerAccount:
    host: str
    port: int
    ssl: bool
    starttls: bool
    username: str
    password: str
    folder: str
    timeout_seconds: float
    ca_file: Path | None = None


@dataclass(frozen=True, slots=True)
class Fetched:
    uid: int
    raw: bytes
    internal_date: datetime | None


class ImapSession:
    def __init__(self, client: IMAPClient, account: ServerAccount, mark: ProcessedMark,
                 stopping: Callable[[], bool]) -> None:
        self.client = client
        self.account = account
        self.mark = mark
        self.stopping = stopping
        self.uidvalidity = 0
        self.can_idle = False

    @classmethod
    def open(cls, account: ServerAccount, mark: ProcessedMark, stopping: Callable[[], bool]) -> ImapSession:
        context = None
        if account.ssl or account.starttls:
            context = ssl.create_default_context(cafile=str(account.ca_file) if account.ca_file else None)
        client = IMAPClient(account.host, account.port, ssl=account.ssl, ssl_context=context,
                            timeout=account.timeout_seconds)
        try:
            client.normalise_times = False  # timezone-aware INTERNALDATEs
            if account.starttls:
                client.starttls(context)
            client.login(account.username, account.password)
            session = cls(client, account, mark, stopping)
            session._select()
        except BaseException:
            _close_quietly(client)
            raise
        return session

    def _select(self) -> None:
        info = self.client.select_folder(self.account.folder)
        self.uidvalidity = int(info[b"UIDVALIDITY"])
        self.can_idle = self.client.has_capability("IDLE")
        if self.mark.action == "move":
            if not self.client.has_capability("MOVE"):
                raise ImapSetupError(f"{self.account.host} lacks the IMAP MOVE capability needed by "
                                     f'processed = "move:{self.mark.target}"; use "flag" instead')
            if not self.client.folder_exists(self.mark.target):
                self.client.create_folder(self.mark.target)
        else:
            permanent = {f.decode() for f in info.get(b"PERMANENTFLAGS", ())}
            if self.mark.target not in permanent and "\\*" not in permanent:
                # The mark will not survive; the saved last UID is then all that prevents re-reads.
                log.warning("imap_flag_not_permanent", flag=self.mark.target, permanent=sorted(permanent))

    def unprocessed(self, after_uid: int) -> list[int]:
        """UIDs above `after_uid` not yet marked processed, oldest first."""
        self.client.noop()  # lets the server report mail that arrived since the last command
        self.new_mail_announced()  # what NOOP announced, this SEARCH finds
        found = self.client.search(["UID", f"{after_uid + 1}:*", *self.mark.unprocessed_criteria()])
        # "n:*" also matches the highest UID when it is below n (RFC 3501 6.4.8).
        return sorted(uid for uid in found if uid > after_uid)

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """RFC822.SIZE of each message (expunged ones absent): what a batch of them will weigh."""
        data = self.client.fetch(list(uids), ["RFC822.SIZE"])
        return {uid: int(data[uid][b"RFC822.SIZE"]) for uid in uids if b"RFC822.SIZE" in data.get(uid, {})}

    def fetch(self, uids: Sequence[int]) -> list[Fetched]:
        """The full messages, without setting \\Seen; messages expunged meanwhile are absent."""
        data = self.client.fetch(list(uids), ["BODY.PEEK[]", "INTERNALDATE"])
        return [Fetched(uid, data[uid][b"BODY[]"], data[uid].get(b"INTERNALDATE"))
                for uid in uids if b"BODY[]" in data.get(uid, {})]

    def mark_processed(self, uids: Sequence[int]) -> None:
        if self.mark.action == "move":
            self.client.move(list(uids), self.mark.target)
        else:
            self.client.add_flags(list(uids), [self.mark.target], silent=True)

    def new_mail_announced(self) -> bool:
        """Whether the server reported `* n EXISTS` since the last call. Mail arriving during a
        round is announced in the answer to some FETCH or STORE, where imaplib files it away;
        the server will not repeat it when IDLE starts, so the poller must look here first."""
        return bool(self.client._imap.untagged_responses.pop("EXISTS", None))

    def wait_idle(self, timeout: float) -> bool:
        """IDLE until the server announces new mail (True) or `timeout` passes (False).

        Lines are read here rather than with imapclient's idle_check(), which polls the socket
        only: a `* n EXISTS` that arrived together with the `+ idling` continuation already sits
        in imaplib's read buffer, invisible to poll, and would be missed until the next server
        keepalive (or never)."""
        self.client.idle()
        new_mail = self._read_idle_responses(timeout)
        self.client.idle_done()  # not reached after a connection error: that session is dropped
        return new_mail

    def _read_idle_responses(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.client.socket(), selectors.EVENT_READ)
            while not self.stopping():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if not self._input_buffered() and not selector.select(left):
                    continue
                line = self.client._imap.readline()  # blocking, bounded by the read timeout
                if not line:
                    raise ConnectionResetError("the server closed the connection during IDLE")
                if _EXISTS.match(line):
                    return True
        return False

    def _input_buffered(self) -> bool:
        """Bytes received but not yet read as lines (imaplib's buffer, the TLS layer's)."""
        sock = self.client.socket()
        blocking_timeout = sock.gettimeout()
        sock.settimeout(0)
        try:
            return bool(self.client._imap.file.peek(1))
        except (BlockingIOError, ssl.SSLWantReadError):
            return False
        finally:
            sock.settimeout(blocking_timeout)

    def interrupt(self) -> None:
        """Wake a thread blocked on the socket (shutdown, not close: the fd stays valid)."""
        try:
            self.client.socket().shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        _close_quietly(self.client)


def _close_quietly(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # already broken: just drop the socket
        try:
            client.shutdown()
        except Exception:
            pass
