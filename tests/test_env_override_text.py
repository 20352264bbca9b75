"""PARVANDEH__SECTION__KEY overrides keep text keys as text (review: set-up contract)."""

from __future__ import annotations

from pathlib import Path

from config.loader import load_settings
from connectors.registry import settings_schemas

TWILIO = """
[twilio]
account_sid = "AC0123456789abcdef0123456789abcdef"
from_number = "+982100000000"
[outbound_smtp]
host = "127.0.0.1"
"""


def test_a_phone_number_or_numeric_name_from_the_environment_stays_text(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(TWILIO)
    settings = load_settings(path, environ={
        "PARVANDEH__TWILIO__FROM_NUMBER": "+982155555555",
        "PARVANDEH__OUTBOUND_SMTP__USERNAME": "100200",
        "PARVANDEH__SLA__SUPERVISOR_TELEGRAM": "123456789",
    }, connector_schemas=settings_schemas())
    confs = {kind: conf for kind, _, conf in settings.connector_instances()}
    assert confs["twilio"].from_number == "+982155555555"
    assert confs["outbound_smtp"].username == "100200"
    assert settings.extra["sla"]["supervisor_telegram"] == "123456789"


def test_numbers_booleans_and_arrays_from_the_environment_still_convert(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(TWILIO)
    settings = load_settings(path, environ={
        "PARVANDEH__OUTBOUND_SMTP__PORT": "2526",
        "PARVANDEH__OUTBOUND_SMTP__STARTTLS": "true",
        "PARVANDEH__CLAIMS__OWN_ADDRESSES": '["a@b.c", "d@e.f"]',
        "PARVANDEH__HTTP__PUBLIC_BASE_URL": '"https://claims.example.ir"',
    }, connector_schemas=settings_schemas())
    confs = {kind: conf for kind, _, conf in settings.connector_instances()}
    assert confs["outbound_smtp"].port == 2526 and confs["outbound_smtp"].starttls is True
    assert settings.claims.own_addresses == ["a@b.c", "d@e.f"]
    assert settings.http.public_base_url == "https://claims.example.ir"
