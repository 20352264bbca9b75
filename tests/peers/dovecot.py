"""A real Dovecot IMAP server for tests: its own config, passwd-file users and Maildirs in a
throwaway directory, listening on a loopback port, run as `dovecot -F -c FILE` (never
/etc/dovecot).

One server per session (Dovecot takes a second to shut down); the `dovecot` fixture hands each
test that server running, with empty mailboxes, and prints the server's log lines from that
test at teardown, which pytest shows only when the test failed."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from imapclient import IMAPClient

DOVECOT = Path("/usr/sbin/dovecot")
MAIL_USER = "nobody"  # unprivileged owner of the Maildirs
START_DEADLINE = 15.0

CONFIG = """\
instance_name = parvandeh-test-{port}
base_dir = {root}/run
state_dir = {root}/state
listen = 127.0.0.1
protocols = imap
ssl = yes
ssl_cert = <{root}/tls/cert.pem
ssl_key = <{root}/tls/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
mail_uid = {uid}
mail_gid = {gid}
first_valid_uid = 1
mail_location = maildir:~/Maildir
default_login_user = dovenull
default_internal_user = dovecot
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
"""


def free_ports(count: int) -> list[int]:
    """Distinct loopback ports free right now (all held open together while choosing)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


@dataclass
class DovecotServer:
    """One Dovecot instance: plain IMAP (STARTTLS offered) on `port`, implicit TLS on `tls_port`
    with a self-signed certificate for 127.0.0.1 (`ca_file` trusts it). `stop()`/`start()`
    restart it on the same ports and mail store (to test reconnects); the accounts are `users`
    (name → password)."""

    root: Path
    port: int
    tls_port: int
    users: dict[str, str]
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def user(self) -> str:
        return next(iter(self.users))

    @property
    def password(self) -> str:
        return self.users[self.user]

    @property
    def ca_file(self) -> Path:
        return self.root / "tls" / "cert.pem"

    @property
    def log_path(self) -> Path:
        return self.root / "dovecot.log"

    def log_text(self, since: int = 0) -> str:
        if not self.log_path.exists():
            return "(no log)"
        with open(self.log_path, "rb") as handle:
            handle.seek(since)
            return handle.read().decode(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def empty_mailboxes(self) -> None:
        """Remove every user's mail (and Dovecot's index of it): the next login starts afresh."""
        for home in (self.root / "home").iterdir():
            shutil.rmtree(home)

    def write_config(self) -> Path:
        mail_owner = pwd.getpwnam(MAIL_USER)
        for sub in ("run", "state", "home"):
            (self.root / sub).mkdir(exist_ok=True)
        os.chown(self.root / "home", mail_owner.pw_uid, mail_owner.pw_gid)
        if not self.ca_file.exists():
            self.ca_file.parent.mkdir()
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                            "-nodes", "-days", "2", "-subj", f"/CN={self.host}", "-addext",
                            f"subjectAltName=IP:{self.host}", "-keyout", str(self.root / "tls" / "key.pem"),
                            "-out", str(self.ca_file)], check=True, capture_output=True)
        (self.root / "passwd").write_text("".join(f"{name}:{{PLAIN}}{pw}::::::\n" for name, pw in self.users.items()))
        path = self.root / "dovecot.conf"
        path.write_text(CONFIG.format(root=self.root, port=self.port, tls_port=self.tls_port,
                                     uid=mail_owner.pw_uid, gid=mail_owner.pw_gid))
        return path

    def start(self) -> None:
        config = self.write_config()
        self.process = subprocess.Popen([str(DOVECOT), "-F", "-c", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_DEADLINE
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"dovecot exited with {self.process.returncode}: {err}\n{self.log_text()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"dovecot did not answer on {self.host}:{self.port} within {START_DEADLINE}s\n"
                           f"{self.log_text()}")

    def stop(self) -> None:
        """Stop the master and every imap process it started (their connections drop)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None

    # -- a mail client for the test side --------------------------------------------------------

    def client(self, user: str | None = None) -> IMAPClient:
        user = user or self.user
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10)
        client.login(user, self.users[user])
        return client

    def append(self, raw: bytes, *, folder: str = "INBOX", user: str | None = None) -> int:
        """APPEND one message; returns its UID (Dovecot answers with UIDPLUS's APPENDUID)."""
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            reply = client.append(folder, raw)
        match = re.search(rb"APPENDUID \d+ (\d+)", reply)
        assert match, f"no APPENDUID in {reply!r}"
        return int(match.group(1))

    def flags(self, uid: int, *, folder: str = "INBOX", user: str | None = None) -> set[str]:
        """The message's flags, or an empty set when it is no longer in the folder."""
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            found = client.get_flags([uid])
        return {flag.decode() for flag in found.get(uid, ())}

    def uids(self, *, folder: str = "INBOX", user: str | None = None) -> list[int]:
        with self.client(user) as client:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            return sorted(client.search("ALL"))


@pytest.fixture(scope="session")
def dovecot_server() -> Iterator[DovecotServer]:
    """The session's Dovecot, with two accounts (alice, bob); skipped only when Dovecot is absent."""
    if not DOVECOT.exists():
        pytest.skip(f"{DOVECOT} not installed (apt-get install -y dovecot-imapd)")
    root = Path(tempfile.mkdtemp(prefix="parvandeh-dovecot-"))
    root.chmod(0o755)  # the mail user must reach its Maildir below it
    server = DovecotServer(root, *free_ports(2), {"alice": "alice-secret", "bob": "bob-secret"})
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def dovecot(dovecot_server: DovecotServer) -> Iterator[DovecotServer]:
    """The session's Dovecot, running (a test may have stopped it), with empty mailboxes."""
    server = dovecot_server
    server.empty_mailboxes()
    if not server.running:
        server.start()
    log_start = server.log_size()
    yield server
    print(f"--- dovecot log during the test ({server.log_path}) ---\n{server.log_text(log_start)}")
