"""Inbound mail from IMAP mailboxes: an imapclient poller per account and folder, IDLE where the
server has it, on its own thread.

How nothing is lost and nothing is read twice:
- A message is marked processed on the server (keyword `$Parvandeh` by default, or moved to a
  folder, see `processed.py`) only after `accept` returned, i.e. after the raw mail is committed.
  A crash, a dropped connection or a store outage (StoreUnavailable: the round stops, the rest
  stays unmarked) leaves the message unmarked, so it is fetched again later; the core stores it
  once whatever happens, by its Message-ID dedupe key (shared with the SMTP connector, so mail
  arriving both ways or in two mailboxes is one message).
- UIDVALIDITY and a last UID are kept per instance in `<store dir>/imap-state/<name>.json` (a
  file, not a table: it describes the mailbox, not the claims, and is safe to delete). The last
  UID advances only over a contiguous run of accepted-and-marked messages, so it may lag but never
  skips; searches start above it. It spares re-reading a whole folder when a mark does not stick
  (no permanent keywords) or a person clears it (processed = "flag:\\Seen" and someone marks mail
  unread). A changed UIDVALIDITY (the folder was recreated) resets it: the whole folder is searched
  for unmarked mail again.
- A message the server cannot hand over (Dovecot answers FETCH for a Maildir file whose size
  does not match its name by dropping the connection, every time) must not hold up the folder:
  after a batch fails to fetch, its messages are fetched one by one, and one that failed
  `MAX_FETCH_FAILURES` times is left out of this run's rounds, unmarked, with an error naming
  its UID. The last UID stays below it, so the next start tries it again.
- IDLE (when `idle = true` and the server's CAPABILITY lists it) wakes the poller on `EXISTS`; it
  is renewed every poll interval, and at least every 25 minutes (servers may drop an idle client
  after 30, RFC 2177). Without IDLE the folder is polled every `poll_interval_seconds`.
- Connection and protocol errors reconnect with exponential backoff (initial, doubling, capped),
  each attempt logged. A missing password or a server lacking MOVE for "move:" is a setup error:
  logged once, not retried.
- The blocking calls run on a single thread owned by the instance, not the shared default pool:
  an IDLE blocks for minutes, and one imaplib connection must not be used from two threads.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from itertools import takewhile
from pathlib import Path
from typing import Any, TypeVar

import structlog
from pydantic import Field, field_validator, model_validator

from config.loader import secret_from_env
from connectors.base import Connector, ConnectorContext, ConnectorSettings, Sink, StoreUnavailable
from connectors.imap.processed import ProcessedMark
from connectors.imap.session import Fetched, ImapSession, ImapSetupError, ServerAccount
from connectors.imap.state import MailboxState, load_state, save_state
from ingest.email_payload import EMAIL_CHANNEL, MIME_FORMAT, email_dedupe_key, normalise_mime
from ingest.records import AcceptOutcome, RawPayload

log = structlog.get_logger(__name__)
T = TypeVar("T")

IDLE_RENEW_SECONDS = 25 * 60
FETCH_BATCH = 20  # messages fetched per round trip: lets the store group-commit
# Bytes fetched per round trip: twenty 27 MB mails at once took the daemon past 1 GB.
FETCH_BATCH_BYTES = 32 * 2**20
# Fetches of one message that failed before it is left out (until the next start): a passing
# network fault rarely hits the same message three times in a row, a broken message always does.
MAX_FETCH_FAILURES = 3


def fetch_batches(uids: Sequence[int], sizes: dict[int, int], *, max_count: int = FETCH_BATCH,
                  max_bytes: int = FETCH_BATCH_BYTES) -> list[list[int]]:
    """`uids` in order, cut into batches of at most `max_count` messages and `max_bytes` (a
    larger message goes alone). A UID without a size (expunged meanwhile) weighs nothing."""
    batches: list[list[int]] = []
    batch: list[int] = []
    weight = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (len(batch) == max_count or weight + size > max_bytes):
            batches.append(batch)
            batch, weight = [], 0
        batch.append(uid)
        weight += size
    if batch:
        batches.append(batch)
    return batches


class ImapSettings(ConnectorSettings):
    host: str
    port: int = Field(993, ge=1, le=65535)
    ssl: bool = True
    starttls: bool = False
    # CA certificates to trust instead of the system's (a private CA, a self-signed server).
    tls_ca_file: Path | None = None
    username: str = Field(min_length=1)
    password_env: str = Field(min_length=1, description="name of the environment variable holding the password")
    folder: str = "INBOX"
    processed: str = "flag"
    poll_interval_seconds: float = Field(60, gt=0)
    idle: bool = True
    reconnect_initial_seconds: float = Field(1, gt=0)
    reconnect_max_seconds: float = Field(300, gt=0)
    timeout_seconds: float = Field(30, gt=0)

    @field_validator("processed")
    @classmethod
    def _processed(cls, value: str) -> str:
        ProcessedMark.parse(value)
        return value

    @model_validator(mode="after")
    def _one_tls_mode(self) -> ImapSettings:
        if self.ssl and self.starttls:
            raise ValueError("ssl = true (TLS from the start, port 993) or starttls = true (port 143), not both")
        return self


def backoff_delay(attempt: int, initial: float, cap: float) -> float:
    """Seconds before reconnect attempt `attempt` (1-based): initial, doubling, capped."""
    return min(cap, initial * 2 ** min(attempt - 1, 60))


class ImapConnector(Connector):
    kind = "imap"
    Settings = ImapSettings
    normalisers = {MIME_FORMAT: normalise_mime}

    def __init__(self, name: str, settings: ConnectorSettings, context: ConnectorContext) -> None:
        super().__init__(name, settings, context)
        self.mark = ProcessedMark.parse(self.conf.processed)
        self._stop = asyncio.Event()
        self._sink: Sink | None = None
        self._session: ImapSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._state: MailboxState | None = None
        self._attempt = 0
        self._idling = False
        # (UIDVALIDITY, UID) -> failed fetches of a batch holding that message, this run.
        self._fetch_failures: dict[tuple[int, int], int] = {}

    @property
    def conf(self) -> ImapSettings:
        return self.settings  # type: ignore[return-value]

    @property
    def polling(self) -> bool:
        """Started and not given up (a setup error ends the poller; network errors do not)."""
        return self._task is not None and not self._task.done()

    @property
    def background_tasks(self) -> list[asyncio.Task[Any] | None]:
        return [self._task]

    @property
    def state_path(self) -> Path:
        return Path(self.context.settings.store.path).parent / "imap-state" / f"{self.name}.json"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, sink: Sink) -> None:
        self._sink = sink
        self._stop.clear()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"imap-{self.name}")
        self._task = asyncio.create_task(self._run(), name=f"imap-{self.name}")
        log.info("imap_started", connector=self.name, host=self.conf.host, port=self.conf.port,
                 folder=self.conf.folder, processed=self.conf.processed)

    async def stop(self) -> None:
        """Let a round finish the batch in hand (accept, mark, save the last UID), or wake the
        thread out of IDLE, then wait for the poller to end."""
        self._stop.set()
        if self._idling and self._session is not None:
            self._session.interrupt()
        if self._task is not None:
            await self._task
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking call on this instance's thread, with our log context."""
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._executor, context.run, fn, *args)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, cut short by stop()."""
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    # -- the poller --------------------------------------------------------------------------

    async def _run(self) -> None:
        structlog.contextvars.bind_contextvars(connector=self.name)
        while not self._stop.is_set():
            try:
                await self._serve()
            except ImapSetupError as exc:
                log.error("imap_account_unusable", error=str(exc))
                return
            except Exception as exc:  # connection, protocol or store failure: back off and retry
                if self._stop.is_set():
                    break
                self._attempt += 1
                delay = backoff_delay(self._attempt, self.conf.reconnect_initial_seconds,
                                      self.conf.reconnect_max_seconds)
                log.warning("imap_round_failed", error=f"{type(exc).__name__}: {exc}",
                            attempt=self._attempt, retry_in_seconds=delay)
                if not isinstance(exc, StoreUnavailable):  # the connection itself is suspect
                    await self._close_session()
                await self._sleep(delay)
        await self._close_session()
        log.info("imap_stopped")

    async def _serve(self) -> None:
        """Connect, then alternate rounds and waits until stopped (or an error escapes)."""
        if self._session is None:
            password = secret_from_env(self.conf.password_env)
            if not password:
                raise ImapSetupError(f"environment variable {self.conf.password_env} (password_env) is unset or empty")
            account = ServerAccount(self.conf.host, self.conf.port, self.conf.ssl, self.conf.starttls,
                                    self.conf.username, password, self.conf.folder, self.conf.timeout_seconds,
                                    self.conf.tls_ca_file)
            self._session = await self._call(ImapSession.open, account, self.mark, self._stop.is_set)
            self._state = await self._call(self._resume_state, self._session.uidvalidity)
            log.info("imap_connected", folder=self.conf.folder, uidvalidity=self._session.uidvalidity,
                     last_uid=self._state.last_uid, idle=self._uses_idle(self._session))
        session = self._session
        idle = self._uses_idle(session)
        while not self._stop.is_set():
            await self._round(session)
            self._attempt = 0  # a full round worked: the next failure starts the backoff afresh
            if self._stop.is_set():
                return
            if idle:
                if await self._call(session.new_mail_announced):
                    continue  # mail arrived during the round: fetch it rather than idle
                self._idling = True
                try:
                    await self._call(session.wait_idle, min(self.conf.poll_interval_seconds, IDLE_RENEW_SECONDS))
                finally:
                    self._idling = False
            else:
                await self._sleep(self.conf.poll_interval_seconds)

    def _uses_idle(self, session: ImapSession) -> bool:
        return self.conf.idle and session.can_idle

    def _resume_state(self, uidvalidity: int) -> MailboxState:
        fresh = MailboxState(self.conf.host, self.conf.username, self.conf.folder, uidvalidity)
        saved = load_state(self.state_path)
        if saved is not None and saved.same_mailbox(fresh):
            return saved
        if saved is not None and saved.uidvalidity != uidvalidity:
            log.warning("imap_uidvalidity_changed", saved=saved.uidvalidity, now=uidvalidity)
        return fresh

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await self._call(session.close)

    async def _round(self, session: ImapSession) -> None:
        assert self._state is not None
        uids = await self._call(session.unprocessed, self._state.last_uid)
        if uids:
            log.info("imap_unprocessed_found", count=len(uids), first_uid=uids[0], last_uid=uids[-1])
        uids = [uid for uid in uids if self._failures(session, uid) < MAX_FETCH_FAILURES]
        if not uids:
            return
        # After a failed fetch, one message at a time (no sizes needed, and Dovecot reads the
        # message itself to answer RFC822.SIZE) until the message at fault is found.
        suspect = any(self._failures(session, uid) for uid in uids)
        sizes = {} if suspect else await self._fetching(session, session.sizes, uids)
        for batch in fetch_batches(uids, sizes, max_count=1 if suspect else FETCH_BATCH):
            if self._stop.is_set():
                return
            await self._accept_and_mark(session, batch, await self._fetching(session, session.fetch, batch))

    def _failures(self, session: ImapSession, uid: int) -> int:
        return self._fetch_failures.get((session.uidvalidity, uid), 0)

    async def _fetching(self, session: ImapSession, fetch: Callable[[Sequence[int]], T], uids: Sequence[int]) -> T:
        """`fetch(uids)`; a failure is counted against each of the messages, then raised (the
        connection is dropped and the round starts again, see `_round`)."""
        try:
            fetched = await self._call(fetch, uids)
        except Exception:
            for uid in uids:
                key = (session.uidvalidity, uid)
                self._fetch_failures[key] = failures = self._fetch_failures.get(key, 0) + 1
                if failures >= MAX_FETCH_FAILURES:
                    log.error("imap_message_unreadable", uid=uid, failures=failures,
                              action="left unmarked in the folder and out of this run; the server's log says why")
            raise
        if fetch == session.fetch:  # the message itself was read: it is not the one at fault
            for uid in uids:
                self._fetch_failures.pop((session.uidvalidity, uid), None)
        return fetched

    def _advance_limit(self, uidvalidity: int) -> int | None:
        """The last UID may not pass a message left out as unreadable: a restart tries it again."""
        skipped = [uid for (validity, uid), failures in self._fetch_failures.items()
                   if validity == uidvalidity and failures >= MAX_FETCH_FAILURES]
        return min(skipped) - 1 if skipped else None

    async def _accept_and_mark(self, session: ImapSession, batch: Sequence[int], fetched: list[Fetched]) -> None:
        """Accept the batch (concurrently: one group commit), mark what was committed, advance
        the last UID over the run that is complete, then raise the first failure if any."""
        assert self._sink is not None and self._state is not None
        outcomes: list[AcceptOutcome | BaseException] = await asyncio.gather(
            *(self._sink.accept(self._payload(m, session.uidvalidity)) for m in fetched), return_exceptions=True)
        failed = {m.uid: o for m, o in zip(fetched, outcomes) if isinstance(o, BaseException)}
        committed = [m.uid for m in fetched if m.uid not in failed]
        if committed:
            await self._call(session.mark_processed, committed)
        for message, outcome in zip(fetched, outcomes):
            if isinstance(outcome, AcceptOutcome):
                log.info("imap_message_accepted", uid=message.uid, inbox_id=outcome.inbox_id,
                         duplicate=outcome.duplicate, marked=self.conf.processed)
        # UIDs in the batch but not fetched were expunged meanwhile: nothing left to do for them.
        complete = list(takewhile(lambda uid: uid not in failed, batch))
        limit = self._advance_limit(session.uidvalidity)
        if complete:
            last = complete[-1] if limit is None else min(complete[-1], limit)
            self._state = self._state.advanced_to(last)
            await self._call(save_state, self.state_path, self._state)
        if failed:
            uid, error = next(iter(failed.items()))
            log.error("imap_accept_failed", uid=uid, error=f"{type(error).__name__}: {error}",
                      unmarked=len(failed))
            raise error

    def _payload(self, message: Fetched, uidvalidity: int) -> RawPayload:
        # INTERNALDATE is when the mailbox received the mail: the clock starts then, even when
        # the poller was down.
        received = message.internal_date.astimezone(UTC) if message.internal_date else datetime.now(UTC)
        return RawPayload(
            channel=EMAIL_CHANNEL,
            connector=self.name,
            dedupe_key=email_dedupe_key(message.raw),
            fmt=MIME_FORMAT,
            body=message.raw,
            received_at=received,
            meta={"uid": str(message.uid), "uidvalidity": str(uidvalidity), "folder": self.conf.folder,
                  "account": self.conf.username},
        )
