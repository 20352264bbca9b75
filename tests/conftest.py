"""Shared fixtures: a configured daemon on loopback with ephemeral ports."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.register_assert_rewrite("connectors.testing")  # the kit's asserts explain themselves

from connectors.testing import settings_from, write_config  # noqa: F401  (our tests import them from here)
from ingest.daemon import Daemon
from ingest.event_loop import loop_factory

# The `make_daemon` fixture is the installed contract kit's, as in an operator's own connector package.
pytest_plugins = ["connectors.testing"]


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
