"""Configuration as an operator meets it: check-config's verdicts, environment overrides, and
values that would only fail later (a signature check, a bounce) refused up front."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from config.listeners import check_listeners, connector_listeners, overlap
from config.loader import ConfigError, load_settings
from config.policies import load_policies
from connectors.base import ConnectorSettings
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


def test_a_secret_written_into_the_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    result = check_config(config_file(tmp_path, '[smtp]\npassword = "hunter2-s3cr3t"\napi_key = "k-s3cr3t"\nbogus = 7\n'))
    assert result.returncode == 2
    assert "s3cr3t" not in result.stderr and "s3cr3t" not in result.stdout
    assert "smtp.password: unknown key (value not shown: it looks like a secret)" in result.stderr
    assert "smtp.api_key: unknown key (value not shown" in result.stderr
    assert "smtp.bogus: unknown key (value 7)" in result.stderr  # an ordinary misspelling still shows its value


SECRETS = '[[telegram]]\nname = "telegram"\ntoken_env = "PV_TEST_TG_TOKEN"\n\n[calls]\npbx = true\ntwilio_voice = false\n'


def test_unset_secrets_are_named(tmp_path: Path) -> None:
    result = check_config(config_file(tmp_path, SECRETS))
    assert result.returncode == 0
    assert "telegram.token_env: environment variable PV_TEST_TG_TOKEN is not set" in result.stderr
    assert "calls.secret_env: environment variable PARVANDEH_CALLS_SECRET is not set" in result.stderr
    assert "PARVANDEH_TWILIO_AUTH_TOKEN" not in result.stderr  # twilio_voice = false


def test_no_warning_when_the_secrets_are_exported(tmp_path: Path) -> None:
    result = check_config(config_file(tmp_path, SECRETS), {"PV_TEST_TG_TOKEN": "1:x", "PARVANDEH_CALLS_SECRET": "s"})
    assert result.returncode == 0 and "is not set here" not in result.stderr


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
    ('[[queues]]\nname = "intake"\n[[routing.rules]]\nname = "x"\nwhen = { keyword = ["x"] }\nthen = { queue = "intake" }\n',
     "routing rule 1 (line 3) 'x': when.keyword: unknown key (value ['x'])"),
    ('[[workflow.rules]]\nname = "x"\nwhen = { event = "message_received", evnt = 1 }\nthen = [{ action = "add_tag", tag = "x" }]\n',
     "workflow rule 1 (line 1) 'x': when.evnt: unknown key (value 1)"),
    ('[[workflow.rules]]\nname = "x"\nwhen = { event = "message_received" }\nthen = [{ action = "add_tag" }]\n',
     "workflow rule 1 (line 1) 'x': then.0.add_tag.tag: missing; it is required"),
    ('[routing.rules]\nname = "x"\nthen = { queue = "intake" }\n',
     "routing.rules = {'name': 'x', 'then': {'queue': 'intake'}}: expected [[routing.rules]] tables"),
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


# -- cross-references: a name that points at nothing --------------------------------------------

SHIPPED = (ROOT / "config" / "default.toml").read_text(encoding="utf-8")
MOTOR_WHEN = 'when = { keywords = ["تصادف", "accident"] }'


def header_line(name: str) -> int:
    """The line of the `[[...]]` header of the shipped table named `name`."""
    return SHIPPED[:SHIPPED.index(f'name = "{name}"')].count("\n")


def shipped_with(tmp_path: Path, old: str, new: str) -> Path:
    """The shipped configuration with one realistic edit."""
    assert old in SHIPPED
    return config_file(tmp_path, SHIPPED.replace(old, new, 1))


def test_check_config_refuses_a_rule_on_an_unknown_channel(tmp_path: Path) -> None:
    result = check_config(shipped_with(tmp_path, MOTOR_WHEN, 'when = { channel = "telgram" }'))
    assert result.returncode == 2, result.stdout
    assert (f"routing rule 1 (line {header_line('motor-accident')}) 'motor-accident': when.channel = 'telgram': "
            "unknown channel: expected one of api, bale, call, email, sms, telegram, webchat, webform, whatsapp"
            ) in result.stderr


@pytest.mark.parametrize(("old", "new", "message"), ids=[
    "connector-kind-as-channel", "rule-insurer", "policy-insurer", "workflow-insurer", "shadowed-policy",
    "supervisor-telegram-unreachable", "supervisor-email-no-address", "template-placeholder", "template-brace",
], argvalues=[
    (MOTOR_WHEN, 'when = { channel = ["email", "imap"] }',  # a connector kind, not a channel
     "when.channel = 'imap': unknown channel: expected one of api, "),
    (MOTOR_WHEN, 'when = { insurer = "Asia" }',
     "'motor-accident': when.insurer = 'Asia': expected an insurer name as `insurer add` takes it"),
    ('name = "urgent"\n', 'name = "urgent"\ninsurer = "Iran Insurance"\n',
     f"sla policy 2 (line {header_line('urgent')}): insurer = 'Iran Insurance': expected an insurer name"),
    ('if = { status = "awaiting_documents" }\nthen = [{ action = "send_template"',
     'if = { status = "awaiting_documents", insurer = "ASIA" }\nthen = [{ action = "send_template"',
     f"workflow rule 2 (line {header_line('documents-reminder')}) 'documents-reminder': if.insurer = 'ASIA'"),
    ('name = "urgent"\npriority = "urgent"\n', 'name = "urgent"\n',
     (f"sla policy 2 (line {header_line('urgent')}): 'urgent' (insurer = None, priority = None) is for the same "
      "tickets as 'standard', listed before it and always chosen")),
    ('supervisor_telegram = ""', 'supervisor_telegram = "123456789"',
     "sla.supervisor_telegram = '123456789': no configured connector sends on telegram; expected a [telegram] table"),
    ('supervisor_email = ""', 'supervisor_email = "boss"',
     "sla.supervisor_email = 'boss': expected a bare address such as 'supervisor@example.ir'"),
    ('[[workflow.rules]]\nname = "documents-arrived"',
     ('[workflow.templates.documents_reminder]\nfa = "پرونده {reference}"\nen = "Claim {ref}"\n\n'
      '[[workflow.rules]]\nname = "documents-arrived"'),
     "workflow.templates.documents_reminder.fa = 'پرونده {reference}': KeyError 'reference'; expected {ref}"),
    ('[[workflow.rules]]\nname = "documents-arrived"',
     ('[workflow.templates.documents_reminder]\nfa = "پرونده {ref}"\nen = "Claim {ref"\n\n'
      '[[workflow.rules]]\nname = "documents-arrived"'),
     "workflow.templates.documents_reminder.en = 'Claim {ref': ValueError"),
])
def test_a_name_that_points_at_nothing_is_refused(tmp_path: Path, old: str, new: str, message: str) -> None:
    """Each of these passed check-config and then never matched, was dropped at every escalation,
    or (a template) quarantined every message its rule fired on."""
    with pytest.raises(ConfigError) as caught:
        load_policies(load(shipped_with(tmp_path, old, new)))
    assert message in str(caught.value)


def test_a_supervisor_address_needs_a_relay(tmp_path: Path) -> None:
    text = SHIPPED.replace('supervisor_email = ""', 'supervisor_email = "boss@example.ir"')
    start = text.index("# Replies and acknowledgements")
    text = text[:start] + text[text.index("# ---- Routing"):]  # no [outbound_smtp]
    with pytest.raises(ConfigError, match=r"sla\.supervisor_email = 'boss@example\.ir': no configured connector"
                                          r" sends on email; expected a \[outbound_smtp\] table"):
        load_policies(load(config_file(tmp_path, text)))


def test_every_channel_name_and_a_literal_brace_are_accepted(tmp_path: Path) -> None:
    path = shipped_with(tmp_path, MOTOR_WHEN, 'when = { channel = ["email", "telegram", "bale", "sms", "whatsapp",'
                        ' "call", "webchat", "webform", "api"], insurer = ["asia", "iran-2"] }')
    path.write_text(path.read_text(encoding="utf-8") + '\n[workflow.templates.documents_reminder]\n'
                    'fa = "{{پرونده}} {ref}"\nen = "Claim {ref}"\n', encoding="utf-8")
    policies = load_policies(load(path))
    assert policies.rules[0].when.channel[-1] == "api"
    assert policies.templates["documents_reminder"].fa.format(ref="PV-1") == "{پرونده} PV-1"


# -- official holidays known only by estimate ---------------------------------------------------


def test_check_config_warns_of_next_years_estimated_holidays(tmp_path: Path) -> None:
    # Next year's lunar holidays are always estimates when the package is released (IR: 2027 on).
    result = check_config(config_file(tmp_path, SHIPPED))
    assert result.returncode == 0, result.stderr
    assert re.search(r"warning: calendar\.official_holidays = 'IR': \d+ holidays of 20\d\d are only estimates of the"
                     r" `holidays` package", result.stderr)


def test_extra_open_settles_an_estimate_and_takes_jalali_days(tmp_path: Path) -> None:
    days = SHIPPED[SHIPPED.index("extra_closed = []"):SHIPPED.index("extra_open = []") + len("extra_open = []")]
    path = shipped_with(tmp_path, days, "extra_closed = [1405-12-20]\nextra_open = [1405-12-19]")
    business = load_policies(load(path)).business
    assert not business.is_closed_day(date(2027, 3, 10)) and business.is_closed_day(date(2027, 3, 11))
    both = shipped_with(tmp_path, days, "extra_closed = [2027-03-10]\nextra_open = [1405-12-19]")
    with pytest.raises(ConfigError, match=r"calendar\.extra_open: 2027-03-10 is in extra_closed too"):
        load_policies(load(both))


def test_a_jalali_day_that_is_no_gregorian_date_can_be_given_quoted(tmp_path: Path) -> None:
    """31 Shahrivar and 30-31 Ordibehesht are Jalali days but no Gregorian ones (June 31st,
    February 30th): unquoted they are not TOML dates, and quoted they were refused as dates."""
    days = SHIPPED[SHIPPED.index("extra_closed = []"):SHIPPED.index("extra_open = []") + len("extra_open = []")]
    path = shipped_with(tmp_path, days, 'extra_closed = ["1406-06-31", "1406/02/30", 1405-12-20]\nextra_open = []')
    business = load_policies(load(path)).business
    assert business.extra_closed == {date(2027, 9, 22), date(2027, 5, 20), date(2027, 3, 11)}
    wrong = shipped_with(tmp_path, days, 'extra_closed = ["1405-12-31"]\nextra_open = []')  # Esfand has 29 days
    with pytest.raises(ConfigError, match=r"calendar\.extra_closed: 1405-12-31 is not a Jalali day"):
        load_policies(load(wrong))


def test_serve_logs_the_estimated_holidays_at_start(tmp_path: Path) -> None:
    # A daemon that then fails to start (its Telegram token is not exported) ends the run quickly.
    config = config_file(tmp_path, f'[store]\npath = "{tmp_path / "s.sqlite3"}"\nattachments_dir = "{tmp_path / "a"}"\n'
                                   '[http]\nport = 0\n[agent_api]\nport = 0\n[telegram]\ntoken_env = "PV_TEST_UNSET"\n')
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PARVANDEH", "PV_TEST"))}
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), "serve", "--config", str(config)],
                            capture_output=True, text=True, timeout=90, cwd=ROOT, env=environ)
    assert result.returncode == 1
    (warning,) = [json.loads(line) for line in result.stderr.splitlines() if "config_warning" in line]
    assert re.search(r"\d+ holidays of 20\d\d are only estimates", warning["detail"]) and warning["level"] == "warning"


# -- what passed check-config and failed only once serve ran ------------------------------------


def run_serve(config: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PARVANDEH", "PV_TEST"))}
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "serve", "--config", str(config)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=environ)


def places(tmp_path: Path, attachments: Path | None = None) -> str:
    return f'[store]\npath = "{tmp_path / "s.sqlite3"}"\nattachments_dir = "{attachments or tmp_path / "a"}"\n'


@pytest.mark.parametrize(("text", "message"), ids=[
    "smtp-on-http", "webchat-wildcard-on-agent-api", "two-smtp",
], argvalues=[
    ("[http]\nport = 8090\n[smtp]\nport = 8090\n",
     "smtp.port = 8090 (host '127.0.0.1'): http listens on '127.0.0.1' port 8090 already; expected another port"),
    ('[webchat]\nhost = "0.0.0.0"\nport = 8765\n',  # the agent API's default address
     "agent_api.port = 8765 (host '127.0.0.1'): webchat listens on '0.0.0.0' port 8765 already"),
    ('[[smtp]]\nname = "in1"\nport = 2600\n[[smtp]]\nname = "in2"\nhost = "localhost"\nport = 2600\n',
     "smtp[in2].port = 2600 (host 'localhost'): smtp[in1] listens on '127.0.0.1' port 2600 already"),
])
def test_two_listeners_on_one_address_are_refused(tmp_path: Path, text: str, message: str) -> None:
    """serve bound the first, then stopped with daemon_start_failed at the second."""
    result = check_config(config_file(tmp_path, text))
    assert result.returncode == 2, result.stdout
    assert message in result.stderr


def test_serve_refuses_a_port_clash_before_it_binds_anything(tmp_path: Path) -> None:
    result = run_serve(config_file(tmp_path, places(tmp_path) + "[http]\nport = 8091\n[smtp]\nport = 8091\n"))
    assert result.returncode == 2
    assert "smtp.port = 8091" in result.stderr and "smtp_listening" not in result.stderr


@pytest.mark.parametrize(("a", "b", "clash"), [
    ("0.0.0.0", "127.0.0.1", True), ("", "::1", True), ("::", "::1", True), ("localhost", "::1", True),
    ("[::1]", "::1", True), ("chat.example.ir", "0.0.0.0", True),
    ("::", "127.0.0.1", False), ("0.0.0.0", "::", False), ("127.0.0.1", "127.0.0.2", False),
    ("chat.example.ir", "127.0.0.1", False),
])
def test_which_hosts_share_a_port(a: str, b: str, clash: bool) -> None:
    """As Linux binds them with asyncio (checked with two create_server calls on one port)."""
    assert overlap(a, b) is clash and overlap(b, a) is clash


def test_distinct_addresses_and_free_ports_do_not_clash(tmp_path: Path) -> None:
    text = ('[http]\nport = 0\n[agent_api]\nport = 0\n[webchat]\nhost = "::"\nport = 2525\n'
            '[[smtp]]\nname = "in1"\nport = 2525\n[[smtp]]\nname = "in2"\nhost = "127.0.0.2"\nport = 2525\n'
            '[[smtp]]\nname = "in3"\nport = 0\n[[smtp]]\nname = "in4"\nport = 0\n')
    result = check_config(config_file(tmp_path, text))
    assert result.returncode == 0, result.stderr


def test_a_plugin_connector_declares_its_listeners(tmp_path: Path) -> None:
    class PagerSettings(ConnectorSettings):
        host: str = "0.0.0.0"
        port: int = 8080

        def listens_on(self) -> tuple[tuple[str, int], ...]:
            return ((self.host, self.port),)

    settings = load(config_file(tmp_path, "")).model_copy(update={"connectors": {"pager": [("pager", PagerSettings())]}})
    with pytest.raises(ConfigError, match=r"pager\.port = 8080 \(host '0\.0\.0\.0'\): http listens on '127\.0\.0\.1'"):
        check_listeners(connector_listeners(settings))


def test_a_reply_template_with_an_unknown_placeholder_is_refused(tmp_path: Path) -> None:
    """The console fills only {ref}, {customer}, {agent}, {subject}: "{costumer}" reached the customer."""
    text = '[[agent_api.reply_templates]]\nname = "x"\ntext = "{costumer} گرامی، پرونده {ref}"\n'
    result = check_config(config_file(tmp_path, text))
    assert result.returncode == 2, result.stdout
    assert ("agent_api.reply_templates[0].text = '{costumer} گرامی، پرونده {ref}': KeyError 'costumer'; expected "
            "{ref}, {customer}, {agent}, {subject} as placeholders") in result.stderr


@pytest.mark.parametrize("origin", ["www.example.ir", "https://www.example.ir/chat", "example.ir:443",
                                    "https://example.ir:99999", "https://*.example.ir"])
def test_an_allowed_origin_no_browser_sends_is_refused(tmp_path: Path, origin: str) -> None:
    result = check_config(config_file(tmp_path, f'[webchat]\nallowed_origins = ["https://ok.ir", "{origin}"]\n'))
    assert result.returncode == 2, result.stdout
    assert f"webchat.allowed_origins = ['https://ok.ir', '{origin}']: expected origins as browsers send them, " \
           f"https://host[:port]" in result.stderr and f"{origin!r} is not one" in result.stderr


def test_allowed_origins_as_browsers_send_them_are_accepted(tmp_path: Path) -> None:
    origins = ["https://www.example.ir", "http://localhost:8000", "HTTPS://Example.ir/", "https://[::1]:8443", "*"]
    settings = load(config_file(tmp_path, f"[webchat]\nallowed_origins = {json.dumps(origins)}\n"))
    assert [conf.allowed_origins for _, _, conf in settings.connector_instances()] == [origins]


def test_an_attachments_dir_under_a_file_is_refused_by_check_config_and_serve(tmp_path: Path) -> None:
    """serve started, and every message with an attachment was quarantined (NotADirectoryError)."""
    (tmp_path / "afile").write_text("x")
    config = config_file(tmp_path, places(tmp_path, tmp_path / "afile" / "att") + "[http]\nport = 0\n"
                                   "[agent_api]\nport = 0\n")
    expected = (f"store.attachments_dir = '{tmp_path / 'afile' / 'att'}': {tmp_path / 'afile'} is not a directory"
                f" (so {tmp_path / 'afile' / 'att'} cannot be made); expected a directory the daemon can create and write")
    result = check_config(config)
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    served = run_serve(config)
    assert served.returncode == 2 and expected in served.stderr and "daemon_started" not in served.stderr


@pytest.mark.parametrize("where", ["under-a-file", "a-directory"])
def test_a_store_path_the_daemon_cannot_create_is_refused_by_check_config_and_serve(tmp_path: Path, where: str) -> None:
    """check-config passed it, and serve then failed opening the database."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    path = tmp_path / "afile" / "s.sqlite3" if where == "under-a-file" else tmp_path / "adir"
    config = config_file(tmp_path, f'[store]\npath = "{path}"\nattachments_dir = "{tmp_path / "a"}"\n'
                                   "[http]\nport = 0\n[agent_api]\nport = 0\n")
    expected = (f"store.path = '{path}': {tmp_path / 'afile'} is not a directory; expected a file in a directory"
                if where == "under-a-file" else f"store.path = '{path}': is a directory; expected the database file")
    result = check_config(config)
    assert result.returncode == 2 and expected in result.stderr, result.stderr
    served = run_serve(config)
    assert served.returncode == 2 and expected in served.stderr and "daemon_started" not in served.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in any directory")
def test_an_unwritable_attachments_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir(mode=0o555)
    result = check_config(config_file(tmp_path, places(tmp_path, tmp_path / "ro" / "att")))
    assert result.returncode == 2
    assert f"{tmp_path / 'ro'} is not writable by this user" in result.stderr


@pytest.mark.parametrize(("channel", "refused"), [("bale", True), ("telegram", False)])
def test_a_bale_bot_does_not_reach_a_telegram_supervisor(tmp_path: Path, channel: str, refused: bool) -> None:
    text = f'[telegram]\nchannel = "{channel}"\n[sla]\nsupervisor_telegram = "123456789"\n'
    settings = load(config_file(tmp_path, text))
    if not refused:
        assert load_policies(settings).supervisor_telegram == "123456789"
        return
    with pytest.raises(ConfigError, match=r"sla\.supervisor_telegram = '123456789': no configured connector sends on "
                                          r"telegram; expected a \[telegram\] table \(with channel = \"telegram\""):
        load_policies(settings)
