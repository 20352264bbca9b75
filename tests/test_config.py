"""Configuration as an operator meets it: check-config's verdicts, environment overrides, and
values that would only fail later (a signature check, a bounce) refused up front."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from config.loader import ConfigError, load_settings
from connectors.registry import settings_schemas

ROOT = Path(__file__).resolve().parent.parent


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def check_config(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`run.py check-config` as an operator runs it, with only `env` of our variables set."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PARVANDEH", "PV_TEST"))} | (env or {})
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "check-config", "--config", str(path)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=environ)


def load(path: Path, environ: dict[str, str] | None = None) -> Any:
    return load_settings(path, environ=environ or {}, connector_schemas=settings_schemas())


# -- check-config -------------------------------------------------------------------------------


def test_check_config_refuses_a_bad_agent_api_table(tmp_path: Path) -> None:
    result = check_config(config_file(tmp_path, '[agent_api]\nport = "abc"\nbogus = 1\n'))
    assert result.returncode == 2, result.stdout
    assert "agent_api.port = 'abc': expected a valid integer" in result.stderr
    assert "agent_api.bogus" in result.stderr and "unknown key" in result.stderr
    assert "Traceback" not in result.stderr


SECRETS = '[[telegram]]\nname = "telegram"\ntoken_env = "PV_TEST_TG_TOKEN"\n\n[calls]\npbx = true\ntwilio_voice = false\n'


def test_unset_secrets_are_named(tmp_path: Path) -> None:
    result = check_config(config_file(tmp_path, SECRETS))
    assert result.returncode == 0
    assert "telegram.token_env: environment variable PV_TEST_TG_TOKEN is not set" in result.stderr
    assert "calls.secret_env: environment variable PARVANDEH_CALLS_SECRET is not set" in result.stderr
    assert "PARVANDEH_TWILIO_AUTH_TOKEN" not in result.stderr  # twilio_voice = false


def test_no_warning_when_the_secrets_are_exported(tmp_path: Path) -> None:
    result = check_config(config_file(tmp_path, SECRETS), {"PV_TEST_TG_TOKEN": "1:x", "PARVANDEH_CALLS_SECRET": "s"})
    assert result.returncode == 0 and "warning" not in result.stderr


@pytest.mark.parametrize("kind", ["directory", "latin1"])
def test_check_config_on_an_unreadable_file_exits_2_without_a_traceback(tmp_path: Path, kind: str) -> None:
    if kind == "directory":
        path, expected = tmp_path, "is a directory"
    else:
        path, expected = tmp_path / "c.toml", "not UTF-8"
        path.write_bytes('[claims]\nown_addresses = ["caf\u00e9@example.ir"]\n'.encode("latin-1"))
    result = check_config(path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert expected in result.stderr and str(path) in result.stderr


@pytest.mark.parametrize(("text", "named"), [
    ('[[workflow.rule]]\nname = "x"\nwhen = { event = "message_received" }\nthen = [{ action = "add_tag", tag = "x" }]\n',
     "workflow.rule: unknown key"),
    ('[[agents]]\nname = "maryam"\nrole = "agent"\n', "agents: unknown section"),
    ('[sla]\nsupervisor_emial = "boss@example.ir"\n', "sla.supervisor_emial: unknown key"),
])
def test_a_misspelt_policy_key_is_an_error(tmp_path: Path, text: str, named: str) -> None:
    result = check_config(config_file(tmp_path, text))
    assert result.returncode == 2, result.stdout
    assert named in result.stderr
    assert "Extra inputs" not in result.stderr


# -- environment overrides ----------------------------------------------------------------------


def test_an_override_for_an_absent_connector_is_refused(tmp_path: Path) -> None:
    path = config_file(tmp_path, "[smtp]\nport = 2525\n")
    with pytest.raises(ConfigError, match=r"webchat \(from PARVANDEH__WEBCHAT__HOST\): there is no \[webchat\] table"):
        load(path, {"PARVANDEH__WEBCHAT__HOST": "0.0.0.0"})
    assert [kind for kind, _, _ in load(path, {"PARVANDEH__SMTP__PORT": "2526"}).connector_instances()] == ["smtp"]


TWILIO = """
[twilio]
account_sid = "AC0123456789abcdef0123456789abcdef"
from_number = "+982100000000"
[outbound_smtp]
host = "127.0.0.1"
"""


def test_a_phone_number_or_numeric_name_from_the_environment_stays_text(tmp_path: Path) -> None:
    settings = load(config_file(tmp_path, TWILIO), {
        "PARVANDEH__TWILIO__FROM_NUMBER": "+982155555555",
        "PARVANDEH__OUTBOUND_SMTP__USERNAME": "100200",
        "PARVANDEH__SLA__SUPERVISOR_TELEGRAM": "123456789",
    })
    confs = {kind: conf for kind, _, conf in settings.connector_instances()}
    assert confs["twilio"].from_number == "+982155555555"
    assert confs["outbound_smtp"].username == "100200"
    assert settings.extra["sla"]["supervisor_telegram"] == "123456789"


def test_numbers_booleans_and_arrays_from_the_environment_still_convert(tmp_path: Path) -> None:
    settings = load(config_file(tmp_path, TWILIO), {
        "PARVANDEH__OUTBOUND_SMTP__PORT": "2526",
        "PARVANDEH__OUTBOUND_SMTP__STARTTLS": "true",
        "PARVANDEH__CLAIMS__OWN_ADDRESSES": '["a@b.c", "d@e.f"]',
        "PARVANDEH__HTTP__PUBLIC_BASE_URL": '"https://claims.example.ir"',
    })
    confs = {kind: conf for kind, _, conf in settings.connector_instances()}
    assert confs["outbound_smtp"].port == 2526 and confs["outbound_smtp"].starttls is True
    assert settings.claims.own_addresses == ["a@b.c", "d@e.f"]
    assert settings.http.public_base_url == "https://claims.example.ir"


# -- values refused up front --------------------------------------------------------------------


@pytest.mark.parametrize("url", ["claims.example.ir", "//claims.example.ir", "https://claims.example.ir?x=1"])
def test_a_public_base_url_without_scheme_is_a_config_error(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match=r"http\.public_base_url = .*expected the URL channels call, with its scheme"):
        load(config_file(tmp_path, f'[http]\npublic_base_url = "{url}"\n'))


@pytest.mark.parametrize("url", ["", "https://claims.example.ir", "https://claims.example.ir/", "http://10.0.0.5:8080/pv"])
def test_absolute_public_base_urls_are_accepted(tmp_path: Path, url: str) -> None:
    assert load(config_file(tmp_path, f'[http]\npublic_base_url = "{url}"\n')).http.public_base_url == url


@pytest.mark.parametrize("address", ["not an address", "Claims <claims@example.ir>", "a@b@c"])
def test_an_outbound_from_address_that_is_no_bare_address_is_refused(tmp_path: Path, address: str) -> None:
    with pytest.raises(ConfigError, match=r"outbound_smtp\.from_address = .*expected a bare address"):
        load(config_file(tmp_path, f'[outbound_smtp]\nfrom_address = "{address}"\n'))


def test_an_outbound_from_address_is_accepted(tmp_path: Path) -> None:
    settings = load(config_file(tmp_path, '[outbound_smtp]\nfrom_address = "claims@localhost"\n'))
    assert [conf.from_address for kind, _, conf in settings.connector_instances() if kind == "outbound_smtp"] == [
        "claims@localhost"]
