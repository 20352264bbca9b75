"""[http] public_base_url without a scheme is refused: every Twilio signature would fail (review)."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.loader import ConfigError, load_settings


@pytest.mark.parametrize("url", ["claims.example.ir", "//claims.example.ir", "https://claims.example.ir?x=1"])
def test_a_public_base_url_without_scheme_is_a_config_error(tmp_path: Path, url: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[http]\npublic_base_url = "{url}"\n')
    with pytest.raises(ConfigError, match=r"http\.public_base_url = .*expected the URL channels call, with its scheme"):
        load_settings(path, environ={})


@pytest.mark.parametrize("url", ["", "https://claims.example.ir", "https://claims.example.ir/", "http://10.0.0.5:8080/pv"])
def test_absolute_public_base_urls_are_accepted(tmp_path: Path, url: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[http]\npublic_base_url = "{url}"\n')
    assert load_settings(path, environ={}).http.public_base_url == url
