"""Shared fixtures: a configured daemon on loopback with ephemeral ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from config.loader import Settings, load_settings
from connectors.registry import settings_schemas
from ingest.daemon import Daemon
from ingest.event_loop import loop_factory


def write_config(tmp_path: Path, extra: str = "", *, outbound_port: int = 1) -> Path:
    """A config for tests: store under tmp_path, SMTP on an ephemeral port, HTTP on port 0."""
    path = tmp_path / "parvandeh.toml"
    path.write_text(
        f"""
[store]
path = "{tmp_path / 'store.sqlite3'}"
attachments_dir = "{tmp_path / 'attachments'}"

[claims]
reference_prefix = "PV"
own_addresses = ["claims@parvandeh.test"]

[http]
host = "127.0.0.1"
port = 0

[agent_api]
host = "127.0.0.1"
port = 0

[ingest]
# Parse in-process: a spawned worker per test daemon would cost a second each. The crash test
# and the benchmarks run the production default (a worker process).
normaliser_processes = 0

[smtp]
host = "127.0.0.1"
port = 0

[outbound_smtp]
host = "127.0.0.1"
port = {outbound_port}
from_address = "claims@parvandeh.test"
{extra}
""",
        encoding="utf-8",
    )
    return path


def settings_from(path: Path, environ: dict[str, str] | None = None) -> Settings:
    return load_settings(path, environ=environ or {}, connector_schemas=settings_schemas())


@pytest.fixture
async def make_daemon(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Factory: `daemon = await make_daemon(extra_toml)`; every daemon is stopped at teardown."""
    started: list[Daemon] = []

    async def factory(extra: str = "", *, outbound_port: int = 1, environ: dict[str, str] | None = None,
                      **kwargs: Any) -> Daemon:
        settings = settings_from(write_config(tmp_path, extra, outbound_port=outbound_port), environ)
        daemon = Daemon(settings, **kwargs)
        await daemon.start()
        started.append(daemon)
        return daemon

    yield factory
    for daemon in reversed(started):
        await daemon.stop()  # also when a test closed its store: connectors must stop polling


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Any]:
    """Async tests run on the loop the daemon runs on by default (uvloop, see ingest.event_loop)."""
    return {"uvloop": loop_factory("uvloop")}


async def refuse_writes(daemon: Daemon, refuse: bool) -> None:
    """SQLite refuses every write on the daemon's writer connection, as after its filesystem was
    remounted read-only, or accepts them again. Set between batches, on the writer's own thread:
    no write can carry it (BEGIN IMMEDIATE itself is refused while it holds)."""
    store = daemon.store
    await asyncio.get_running_loop().run_in_executor(
        store._executor, store._conn.execute, f"PRAGMA query_only = {'ON' if refuse else 'OFF'}")  # type: ignore[union-attr]
