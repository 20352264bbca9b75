"""Connectors are found through the `parvandeh.connectors` entry point group, so an operator's
own package can add a channel without editing Parvandeh."""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points

import structlog

from connectors.base import Connector, ConnectorSettings, Normaliser

GROUP = "parvandeh.connectors"
DISTRIBUTION = "parvandeh"
log = structlog.get_logger(__name__)


def _shipped_first(ep: EntryPoint) -> bool:
    return not (ep.dist is not None and ep.dist.name == DISTRIBUTION)


@cache
def connector_classes() -> dict[str, type[Connector]]:
    """Entry-point name (the configuration table's name) -> class. Ours are taken first: the order
    plugins come in is sys.path's and the file system's, and a plugin must never replace a shipped
    connector's table or payload format (its normaliser would be handed that channel's messages)."""
    found: dict[str, type[Connector]] = {}
    formats: dict[str, tuple[str, Normaliser]] = {}  # payload format -> (entry point, its normaliser)
    for ep in sorted(entry_points(group=GROUP), key=_shipped_first):
        if ep.name in found:
            log.error("connector_name_taken", entry_point=ep.name, value=ep.value,
                      taken_by=f"{found[ep.name].__module__}.{found[ep.name].__qualname__}")
            continue
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
        # Two connectors may share a format with one normaliser (SMTP and IMAP both hand in MIME).
        taken = {fmt: formats[fmt][0] for fmt, normalise in cls.normalisers.items()
                 if fmt in formats and formats[fmt][1] is not normalise}
        if taken:
            log.error("connector_format_taken", entry_point=ep.name, formats=taken)
            continue
        formats.update((fmt, (ep.name, normalise)) for fmt, normalise in cls.normalisers.items())
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
