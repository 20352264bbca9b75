"""Connectors are found through the `parvandeh.connectors` entry point group, so an operator's
own package can add a channel without editing Parvandeh."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

import structlog

from connectors.base import Connector, Normaliser

GROUP = "parvandeh.connectors"
log = structlog.get_logger(__name__)


@cache
def connector_classes() -> dict[str, type[Connector]]:
    found: dict[str, type[Connector]] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not take the daemon down
            log.error("connector_load_failed", entry_point=ep.name, error=str(exc))
            continue
        if not (isinstance(cls, type) and issubclass(cls, Connector)):
            log.error("connector_not_a_connector", entry_point=ep.name)
            continue
        found[ep.name] = cls
    return found


def settings_schemas() -> dict[str, type]:
    return {kind: cls.Settings for kind, cls in connector_classes().items()}


@cache
def normalisers() -> dict[str, Normaliser]:
    table: dict[str, Normaliser] = {}
    for cls in connector_classes().values():
        table.update(cls.normalisers)
    return table
