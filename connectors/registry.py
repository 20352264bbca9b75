"""Connectors are found through the `parvandeh.connectors` entry point group, so an operator's
own package can add a channel without editing Parvandeh."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points

import structlog

from connectors.base import Connector, ConnectorSettings, Normaliser

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
        if missing := incomplete(cls):
            log.error("connector_incomplete", entry_point=ep.name, missing=missing)
            continue
        found[ep.name] = cls
    return found


def incomplete(cls: type[Connector]) -> list[str]:
    """What a connector class lacks of the contract that is read before it ever runs: a plugin
    without its settings model took every command down with an AttributeError."""
    missing = []
    if not isinstance(getattr(cls, "kind", None), str):
        missing.append("kind (a str)")
    settings = getattr(cls, "Settings", None)
    if not (isinstance(settings, type) and issubclass(settings, ConnectorSettings)):
        missing.append("Settings (a ConnectorSettings subclass)")
    if not isinstance(getattr(cls, "normalisers", None), dict):
        missing.append("normalisers (a dict)")
    return missing


def settings_schemas() -> dict[str, type]:
    return {kind: cls.Settings for kind, cls in connector_classes().items()}


@cache
def normalisers() -> dict[str, Normaliser]:
    table: dict[str, Normaliser] = {}
    for cls in connector_classes().values():
        table.update(cls.normalisers)
    return table
