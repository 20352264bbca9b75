"""Inbound mail polled from a real Dovecot over IMAP: messages APPENDed by the test are ingested,
marked only after commit, never read twice across restarts, never skipped, and the poller
survives the server going away."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import pwd
import smtplib
import time
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from structlog.testing import capture_logs

from config.loader import ConfigError
from connectors.base import StoreUnavailable
from connectors.imap import ImapConnector, backoff_delay, fetch_batches
from connectors.imap.processed import ProcessedMark
from connectors.imap.state import MailboxState, load_state, save_state
from ingest import queries
from ingest.daemon import Daemon
from ingest.records import RawPayload
from ingest.service import Ingest
from tests.conftest import settings_from, write_config
from tests.kit.contract import ConnectorContract
from tests.mailgen import mail
from tests.peers.dovecot import DovecotServer, dovecot, dovecot_server  # noqa: F401  (fixtures)

T = TypeVar("T")
MARK = "$Parvandeh"


def password_env(user: str) -> str:
    return f"PARVANDEH_TEST_IMAP_{user.upper()}_PASSWORD"


@pytest.fixture
def mailserver(dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch) -> DovecotServer:  # noqa: F811
    """The test Dovecot, with its accounts' passwords in the environment (secrets come only from there)."""
    for user, password in dovecot.users.items():
        monkeypatch.setenv(password_env(user), password)
    return dovecot


def imap_table(server: DovecotServer, *, name: str = "imap", user: str = "alice", **keys: Any) -> str:
    """One [[imap]] instance on the test Dovecot, reconnecting fast."""
    values: dict[str, Any] = {
        "name": name, "host": server.host, "port": server.port, "ssl": False, "username": user,
        "password_env": password_env(user), "reconnect_initial_seconds": 0.05, "reconnect_max_seconds": 0.5,
        **keys,
    }
    return "\n[[imap]]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


async def eventually(check: Callable[[], Awaitable[T] | T], what: str, timeout: float = 10.0) -> T:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds. A plain
    function (an IMAP query) runs on a thread so the daemon under test keeps running."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check() if inspect.iscoroutinefunction(check) else await asyncio.to_thread(check)
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def inbound(daemon: Daemon) -> list[dict[str, Any]]:
    await daemon.ingest.drained()
    found = []
    for ticket in await queries.list_tickets(daemon.store):
        detail = await queries.ticket_detail(daemon.store, ticket["reference"])
        assert detail is not None
        found += [m for m in detail["messages"] if m["direction"] == "in"]
    return found


async def subjects_become(daemon: Daemon, expected: list[str], timeout: float = 10.0) -> list[str]:
    """Wait until the inbound subjects are exactly `expected` (as a multiset)."""
    async def check() -> list[str] | None:
        got = sorted(m["subject"] for m in await inbound(daemon))
        return got if got == sorted(expected) else None
    try:
        return await eventually(check, f"subjects {sorted(expected)}", timeout)
    except AssertionError:
        got = sorted(m["subject"] for m in await inbound(daemon))
        raise AssertionError(f"inbound subjects {got}, expected {sorted(expected)}") from None


async def append(server: DovecotServer, message: EmailMessage, *, folder: str = "INBOX", user: str = "alice") -> int:
    return await asyncio.to_thread(server.append, message.as_bytes(), folder=folder, user=user)


async def flags(server: DovecotServer, uid: int, *, folder: str = "INBOX", user: str = "alice") -> set[str]:
    return await asyncio.to_thread(server.flags, uid, folder=folder, user=user)


def record_accepts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every (connector, dedupe key) offered to any daemon's ingest from now on."""
    seen: list[tuple[str, str]] = []
    original = Ingest.accept

    async def accept(self: Ingest, payload: RawPayload) -> Any:
        seen.append((payload.connector, payload.dedupe_key))
        return await original(self, payload)

    monkeypatch.setattr(Ingest, "accept", accept)
    return seen


# -- pure parts ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "action", "target", "criteria"), [
    ("flag", "flag", "$Parvandeh", ["NOT", "KEYWORD", "$Parvandeh"]),
    ("flag:$Claims", "flag", "$Claims", ["NOT", "KEYWORD", "$Claims"]),
    ("flag:\\Seen", "flag", "\\Seen", ["UNSEEN"]),
    ("flag:\\Flagged", "flag", "\\Flagged", ["UNFLAGGED"]),
    ("move:Parvandeh/Done", "move", "Parvandeh/Done", ["ALL"]),
])
def test_processed_spec_names_the_mark_and_the_search_for_unmarked_mail(
        spec: str, action: str, target: str, criteria: list[str]) -> None:
    mark = ProcessedMark.parse(spec)
    assert (mark.action, mark.target) == (action, target)
    assert mark.unprocessed_criteria() == criteria


@pytest.mark.parametrize("spec", ["", "delete", "move:", "flag:\\Deleted", "flag:two words", "flag:(x)"])
def test_unusable_processed_spec_is_a_config_error_naming_the_key(tmp_path: Path, spec: str) -> None:
    table = f'\n[imap]\nhost = "h"\nusername = "u"\npassword_env = "P"\nprocessed = {json.dumps(spec)}\n'
    with pytest.raises(ConfigError, match=r"imap\.processed"):
        settings_from(write_config(tmp_path, table))


def test_ssl_and_starttls_together_is_a_config_error(tmp_path: Path) -> None:
    table = '\n[imap]\nhost = "h"\nusername = "u"\npassword_env = "P"\nssl = true\nstarttls = true\n'
    with pytest.raises(ConfigError, match="starttls"):
        settings_from(write_config(tmp_path, table))


def test_fetch_batches_are_bounded_in_messages_and_in_bytes() -> None:
    mb = 2**20
    # Ten 27 MB mails (a photo each): one or two a batch, never twenty at once.
    big = fetch_batches(list(range(1, 11)), dict.fromkeys(range(1, 11), 27 * mb))
    assert big == [[uid] for uid in range(1, 11)]
    small = fetch_batches(list(range(1, 46)), dict.fromkeys(range(1, 46), 4_000))
    assert [len(b) for b in small] == [20, 20, 5]
    mixed = fetch_batches([1, 2, 3, 4, 5], {1: 10 * mb, 2: 10 * mb, 3: 40 * mb, 4: 1 * mb, 5: 20 * mb})
    assert mixed == [[1, 2], [3], [4, 5]], "a message over the byte bound goes alone; order kept"
    assert fetch_batches([7, 8], {}) == [[7, 8]], "expunged meanwhile: weighs nothing"


def test_reconnect_backoff_doubles_from_the_initial_delay_up_to_the_cap() -> None:
    assert [backoff_delay(n, 1, 30) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff_delay(10_000, 0.5, 300) == 300


def test_mailbox_state_survives_a_round_trip_and_a_torn_file_means_a_fresh_start(tmp_path: Path) -> None:
    path = tmp_path / "imap-state" / "imap.json"
    assert load_state(path) is None
    state = MailboxState("mail.example", "claims", "INBOX", uidvalidity=7).advanced_to(41).advanced_to(12)
    save_state(path, state)
    assert load_state(path) == MailboxState("mail.example", "claims", "INBOX", 7, 41)
    path.write_text('{"host": "mail.example", "uidval')
    assert load_state(path) is None


# -- the contract every connector passes -------------------------------------------------------

class TestImapContract(ConnectorContract):
    """The channel acknowledgement of IMAP is the mark: flagged means committed."""

    channel = "email"

    @pytest.fixture(autouse=True)
    async def _server(self, mailserver: DovecotServer) -> Any:
        self.server = mailserver
        self.daemons: list[Daemon] = []
        self.refused: list[str] = []
        yield
        for daemon in self.daemons:  # the kit closes the store under one daemon: stop its poller
            for connector in daemon.connectors.values():
                await connector.stop()

    async def start(self, make_daemon: Any) -> Daemon:
        daemon = await make_daemon(imap_table(self.server))
        self.daemons.append(daemon)
        accept = daemon.ingest.accept

        async def recording(payload: RawPayload) -> Any:
            try:
                return await accept(payload)
            except StoreUnavailable:
                self.refused.append(payload.dedupe_key)
                raise

        daemon.ingest.accept = recording  # type: ignore[method-assign]
        return daemon

    async def deliver(self, daemon: Daemon, key: str) -> bool:
        uid = await append(self.server, mail(message_id=f"<{key}@example.com>", body=f"message {key}"))

        async def settled() -> str | None:
            if MARK in await flags(self.server, uid):
                return "marked"
            # Refused twice: the first refusal's round ended without marking, or there would
            # have been no second try.
            return "refused" if self.refused.count(f"mid:{key}@example.com") >= 2 else None

        return await eventually(settled, f"message {key} marked or refused") == "marked"


# -- against a real Dovecot --------------------------------------------------------------------

async def test_appended_persian_mail_with_attachment_becomes_a_claim_and_is_marked(
        make_daemon: Any, mailserver: DovecotServer) -> None:
    claim = mail(sender="Sara Ahmadi <sara@example.com>", subject="خسارت تصادف خودرو",
                 body="سلام، ماشینم دیروز تصادف کرد. عکس‌ها پیوست است.")
    claim.add_attachment(b"\xff\xd8\xff\xe0 fake jpeg", maintype="image", subtype="jpeg",
                         filename="عکس-خودرو.jpg")
    uids = [await append(mailserver, claim),
            await append(mailserver, mail(sender="reza@example.com", subject="Windscreen claim"))]

    daemon = await make_daemon(imap_table(mailserver))
    await subjects_become(daemon, ["خسارت تصادف خودرو", "Windscreen claim"])

    (persian,) = [m for m in await inbound(daemon) if m["sender"] == "sara@example.com"]
    assert persian["channel"] == "email" and persian["connector"] == "imap"
    assert "ماشینم دیروز تصادف کرد" in persian["text"]
    assert [a["filename"] for a in persian["attachments"]] == ["عکس-خودرو.jpg"]
    assert persian["attachments"][0]["sha256"]
    for uid in uids:
        assert MARK in await flags(mailserver, uid)
        assert "\\Seen" not in await flags(mailserver, uid), "BODY.PEEK must leave the mail unread"


async def test_restart_reads_nothing_twice_and_skips_nothing(
        make_daemon: Any, mailserver: DovecotServer, monkeypatch: pytest.MonkeyPatch) -> None:
    first_batch = [mail(sender=f"c{n}@example.com", subject=f"first {n}") for n in range(3)]
    for message in first_batch:
        await append(mailserver, message)
    first = await make_daemon(imap_table(mailserver))
    await subjects_become(first, ["first 0", "first 1", "first 2"])
    await first.stop()

    # While it is down: two new mails, and someone clears our mark from the old ones (a server
    # that drops keywords, a person tidying up). The saved last UID must still hold.
    for n in range(3, 5):
        await append(mailserver, mail(sender=f"c{n}@example.com", subject=f"while down {n}"))
    with mailserver.client() as client:
        client.select_folder("INBOX")
        client.remove_flags(client.search("ALL"), [MARK])

    offered = record_accepts(monkeypatch)
    second = await make_daemon(imap_table(mailserver))
    await append(mailserver, mail(sender="c5@example.com", subject="after restart 5"))
    await subjects_become(second, ["first 0", "first 1", "first 2", "while down 3", "while down 4",
                                   "after restart 5"])
    assert len(offered) == 3, f"the restarted poller re-read old mail: {offered}"
    (row,) = await second.store.fetchall("SELECT count(*) AS n FROM inbox")
    assert row["n"] == 6


async def test_recreated_folder_with_a_new_uidvalidity_is_read_from_its_start(
        make_daemon: Any, mailserver: DovecotServer) -> None:
    for n in range(3):
        await append(mailserver, mail(subject=f"old {n}", sender=f"o{n}@example.com"), folder="Claims")
    first = await make_daemon(imap_table(mailserver, folder="Claims"))
    await subjects_become(first, ["old 0", "old 1", "old 2"])
    await first.stop()

    with mailserver.client() as client:
        client.delete_folder("Claims")
        client.create_folder("Claims")
    uid = await append(mailserver, mail(subject="new 0", sender="n0@example.com"), folder="Claims")
    assert uid == 1  # below the saved last UID (3): only UIDVALIDITY tells the poller to start over

    second = await make_daemon(imap_table(mailserver, folder="Claims"))
    await subjects_become(second, ["old 0", "old 1", "old 2", "new 0"])


async def test_mail_is_not_marked_while_the_store_is_unavailable_and_is_taken_after_restart(
        make_daemon: Any, mailserver: DovecotServer, monkeypatch: pytest.MonkeyPatch) -> None:
    offered = record_accepts(monkeypatch)
    first = await make_daemon(imap_table(mailserver))
    await first.store.close()
    uid = await append(mailserver, mail(subject="during outage"))

    # Two offers prove the first refusal ended its round without marking (or there would be no retry).
    await eventually(lambda: len(offered) >= 2, "the poller to retry the refused mail")
    assert MARK not in await flags(mailserver, uid)
    await first.stop()

    second = await make_daemon(imap_table(mailserver))
    await subjects_become(second, ["during outage"])
    await eventually(lambda: MARK in mailserver.flags(uid), "the mail to be marked")


def deliver_broken(server: DovecotServer, message: EmailMessage, user: str = "alice") -> None:
    """Drop a message straight into the Maildir with a size in its file name larger than the
    file, as a copy or a restore gone wrong leaves one: Dovecot lists it, but every FETCH of its
    body fails and drops the connection ("Cached message size larger than expected")."""
    raw = message.as_bytes()
    path = server.root / "home" / user / "Maildir" / "new" / f"{int(time.time())}.M1P1.broken,S={len(raw) + 5000}"
    path.write_bytes(raw)
    owner = pwd.getpwnam("nobody")
    os.chown(path, owner.pw_uid, owner.pw_gid)


async def test_a_message_the_server_cannot_hand_over_does_not_hold_up_the_rest(
        make_daemon: Any, mailserver: DovecotServer) -> None:
    appended = [await append(mailserver, mail(subject="before", sender="a@example.com"))]
    await asyncio.to_thread(deliver_broken, mailserver, mail(subject="broken", sender="b@example.com"))
    appended.append(await append(mailserver, mail(subject="after", sender="c@example.com")))
    (broken,) = set(await asyncio.to_thread(mailserver.uids)) - set(appended)

    with capture_logs() as logs:
        daemon = await make_daemon(imap_table(mailserver))
        await subjects_become(daemon, ["before", "after"])
        await eventually(lambda: any(e["event"] == "imap_message_unreadable" for e in logs), "the broken mail left out")
    (unreadable,) = [e for e in logs if e["event"] == "imap_message_unreadable"]
    assert unreadable["uid"] == broken
    assert MARK not in await flags(mailserver, broken), "left for a person (or the next start) to deal with"
    connector = daemon.connectors["imap"]
    assert isinstance(connector, ImapConnector) and connector.polling
    # Mail that arrives later still flows; the last UID stays below the broken message.
    await append(mailserver, mail(subject="later", sender="d@example.com"))
    await subjects_become(daemon, ["before", "after", "later"])
    state = load_state(connector.state_path)
    assert state is not None and state.last_uid == broken - 1


async def test_same_mail_in_two_accounts_and_over_smtp_is_stored_once(
        make_daemon: Any, mailserver: DovecotServer) -> None:
    message = mail(subject="ارسال مدارک بیمه‌نامه", sender="hamid@example.com")
    daemon = await make_daemon(imap_table(mailserver, name="alice-inbox", user="alice")
                               + imap_table(mailserver, name="bob-inbox", user="bob"))
    alice_uid = await append(mailserver, message, user="alice")
    bob_uid = await append(mailserver, message, user="bob")

    smtp_port: int = daemon.connectors["smtp"].port  # type: ignore[attr-defined]

    def over_smtp() -> None:
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as client:
            client.sendmail("hamid@example.com", ["claims@parvandeh.test"], message.as_bytes())

    await asyncio.to_thread(over_smtp)
    for user, uid in (("alice", alice_uid), ("bob", bob_uid)):
        await eventually(lambda u=user, i=uid: MARK in mailserver.flags(i, user=u), f"{user}'s copy to be marked")
    await subjects_become(daemon, ["ارسال مدارک بیمه‌نامه"])
    (row,) = await daemon.store.fetchall("SELECT count(*) AS n FROM inbox")
    assert row["n"] == 1


async def test_idle_wakes_the_poller_long_before_its_poll_interval(
        make_daemon: Any, mailserver: DovecotServer) -> None:
    daemon = await make_daemon(imap_table(mailserver, poll_interval_seconds=3600))
    await append(mailserver, mail(subject="before idle"))
    await subjects_become(daemon, ["before idle"])  # the first round is over: the poller idles now
    await append(mailserver, mail(subject="during idle", sender="other@example.com"))
    await subjects_become(daemon, ["before idle", "during idle"], timeout=5)


@pytest.mark.parametrize("tls", ["ssl", "starttls"])
async def test_tls_connections_verify_the_server_against_the_configured_ca(
        make_daemon: Any, mailserver: DovecotServer, tls: str) -> None:
    port = mailserver.tls_port if tls == "ssl" else mailserver.port
    await append(mailserver, mail(subject=f"over {tls}"))
    with capture_logs() as logs:
        untrusting = await make_daemon(imap_table(mailserver, name="untrusting", port=port, ssl=tls == "ssl",
                                                  starttls=tls == "starttls"))
        await eventually(lambda: any(e["event"] == "imap_round_failed" for e in logs), "a refused certificate")
    assert "CERTIFICATE_VERIFY_FAILED" in next(e["error"] for e in logs if e["event"] == "imap_round_failed")
    await untrusting.stop()

    daemon = await make_daemon(imap_table(mailserver, port=port, ssl=tls == "ssl", starttls=tls == "starttls",
                                          tls_ca_file=str(mailserver.ca_file)))
    await subjects_become(daemon, [f"over {tls}"])


async def test_without_idle_the_folder_is_polled(make_daemon: Any, mailserver: DovecotServer) -> None:
    daemon = await make_daemon(imap_table(mailserver, idle=False, poll_interval_seconds=0.1))
    await append(mailserver, mail(subject="polled 1"))
    await subjects_become(daemon, ["polled 1"])
    await append(mailserver, mail(subject="polled 2", sender="other@example.com"))
    await subjects_become(daemon, ["polled 1", "polled 2"])


async def test_poller_waits_for_a_server_that_is_down_and_reconnects_after_it_restarts(
        make_daemon: Any, mailserver: DovecotServer) -> None:
    await asyncio.to_thread(mailserver.stop)
    with capture_logs() as logs:
        daemon = await make_daemon(imap_table(mailserver))  # starts although the server is unreachable
        await eventually(lambda: any(e["event"] == "imap_round_failed" for e in logs), "a failed connection")
        await asyncio.to_thread(mailserver.start)
        await append(mailserver, mail(subject="after first start"))
        await subjects_become(daemon, ["after first start"])
    failures = [e for e in logs if e["event"] == "imap_round_failed"]
    assert [e["attempt"] for e in failures] == list(range(1, len(failures) + 1)), "every attempt is logged"
    assert [e["retry_in_seconds"] for e in failures[:3]] == [0.05, 0.1, 0.2][:len(failures)]

    await asyncio.to_thread(mailserver.stop)  # drops the poller's IDLE connection
    await asyncio.to_thread(mailserver.start)
    await append(mailserver, mail(subject="after restart", sender="other@example.com"))
    await subjects_become(daemon, ["after first start", "after restart"])


async def test_move_mode_moves_committed_mail_out_of_the_watched_folder(
        make_daemon: Any, mailserver: DovecotServer) -> None:
    await append(mailserver, mail(subject="to be filed"))
    daemon = await make_daemon(imap_table(mailserver, processed="move:Parvandeh"))
    await subjects_become(daemon, ["to be filed"])
    await eventually(lambda: mailserver.uids(folder="Parvandeh") and not mailserver.uids(),
                     "the mail to move to the Parvandeh folder")


async def test_missing_password_stops_the_account_without_retrying(make_daemon: Any) -> None:
    daemon = await make_daemon('\n[imap]\nhost = "127.0.0.1"\nport = 1\nssl = false\nusername = "u"\n'
                               'password_env = "PARVANDEH_TEST_UNSET_PASSWORD"\n')
    connector: ImapConnector = daemon.connectors["imap"]  # type: ignore[assignment]
    await eventually(lambda: not connector.polling, "the poller to give up on the unusable account")
    # Receiving nothing more, for good: the health probe says so, naming the account's poller.
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{daemon.http_port}/healthz") as response:
        assert response.status == 503
        assert (await response.json())["stopped"] == ["imap-imap"]
