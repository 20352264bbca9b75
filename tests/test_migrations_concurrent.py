"""Two processes opening a store that needs a migration at the same moment (the daemon and a
`run.py` command during an upgrade): the migration runs once, and neither fails."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

from ingest.migrations import MIGRATIONS, migrate, register_functions


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    register_functions(conn)  # the scripts run here as they are, not through `migrate`
    return conn


def test_a_store_migrated_by_another_process_meanwhile_is_not_migrated_again(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    old = connect(path)
    for number, script in enumerate(MIGRATIONS[:-1], start=1):  # a store one version behind
        old.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    old.close()

    other = connect(path)  # the other process: it holds the write lock while it migrates
    other.execute("BEGIN IMMEDIATE")
    outcome: list[object] = []

    def ours() -> None:
        try:
            outcome.append(migrate(connect(path)))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=ours)
    thread.start()
    time.sleep(0.3)  # ours has looked at the store and waits for the lock
    other.execute("COMMIT")
    migrate(other)  # the other process's migration, done first
    thread.join(30)
    assert outcome == [len(MIGRATIONS)], f"the migration ran twice: {outcome}"
    assert other.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_migrating_statement_by_statement_builds_the_same_schema(tmp_path: Path) -> None:
    fresh = connect(tmp_path / "a.sqlite3")
    migrate(fresh)
    scripted = connect(tmp_path / "b.sqlite3")
    for number, script in enumerate(MIGRATIONS, start=1):
        scripted.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    schema = "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
    assert fresh.execute(schema).fetchall() == scripted.execute(schema).fetchall()
