"""An environment override does not switch on a connector the file does not have (review)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import ConfigError, load_settings
from connectors.registry import settings_schemas


def test_an_override_for_an_absent_connector_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[smtp]\nport = 2525\n')
    with pytest.raises(ConfigError, match=r"webchat \(from PARVANDEH__WEBCHAT__HOST\): there is no \[webchat\] table"):
        load_settings(path, environ={"PARVANDEH__WEBCHAT__HOST": "0.0.0.0"}, connector_schemas=settings_schemas())
    settings = load_settings(path, environ={"PARVANDEH__SMTP__PORT": "2526"}, connector_schemas=settings_schemas())
    assert [kind for kind, _, _ in settings.connector_instances()] == ["smtp"]
