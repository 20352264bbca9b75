"""Property-based tests of the insurer API against the OpenAPI document it serves: requests
generated from the schema never crash the server, and every answer (status code, content type,
body) is one the document declares. The daemon runs on its own event loop in a thread, since
schemathesis calls the API synchronously."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from ingest.daemon import Daemon
from ingest.insurers import create_insurer
from schemathesis.checks import positive_data_acceptance
from tests.conftest import settings_from, write_config


class ServedDaemon:
    """A daemon on a private event loop in a background thread."""

    def __init__(self, config: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.daemon = Daemon(settings_from(config))
        self.thread = threading.Thread(target=self.loop.run_forever, name="daemon-loop", daemon=True)

    def run(self, coro):  # noqa: ANN001, ANN201 — any coroutine, its result
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def __enter__(self) -> ServedDaemon:
        self.thread.start()
        self.run(self.daemon.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.run(self.daemon.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    config = write_config(tmp_path_factory.mktemp("schema"), "[insurer_api]\n")
    with ServedDaemon(config) as served:
        key = served.run(served.daemon.store.write(create_insurer("asia"))).api_key
        yield f"http://127.0.0.1:{served.daemon.http_port}", key


@pytest.fixture(scope="module")
def api_schema(served: tuple[str, str]) -> schemathesis.BaseSchema:
    base, _ = served
    return schemathesis.openapi.from_url(f"{base}/api/v1/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_answers_as_its_openapi_document_declares(case: schemathesis.Case, served: tuple[str, str]) -> None:
    base, key = served
    # A schema cannot express the national id's check digit, so schema-valid data may be refused.
    case.call_and_validate(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {key}"},
                           excluded_checks=[positive_data_acceptance])
