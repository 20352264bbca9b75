"""Load and validate the TOML configuration."""

from __future__ import annotations

import importlib.util
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default.toml")
ENV_PREFIX = "PARVANDEH__"
EventLoopName = Literal["uvloop", "asyncio"]


class ConfigError(Exception):
    """A configuration problem, phrased for the operator: key, value, what was expected."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSettings(Section):
    path: Path = Path("var/parvandeh.sqlite3")
    attachments_dir: Path = Path("var/attachments")
    synchronous: Literal["FULL", "NORMAL"] = "FULL"
    max_batch: int = Field(256, ge=1, le=10_000)
    # Threading operations per batch (each ~0.5-1 ms)...
    background_batch: int = Field(128, ge=1, le=10_000)
    # ...and how long an acknowledgement waits behind them before it joins the running
    # transaction, which then commits (ingest/store.py).
    ack_wait_ms: float = Field(10.0, gt=0, le=10_000)


class ClaimSettings(Section):
    reference_prefix: str = Field("PV", pattern=r"^[A-Z]{1,6}$")
    continuity_window_hours: float = Field(72, ge=0)
    acknowledge_new_tickets: bool = True
    acknowledgements_per_recipient_per_hour: int = Field(3, ge=0)
    own_addresses: list[str] = []
    default_queue: str = "intake"
    max_attachment_bytes: int = Field(25 * 2**20, ge=1)

    @field_validator("own_addresses")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value]


class HttpSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    # What channels sign (Twilio): the scheme and host they call, e.g. "https://claims.example.ir".
    public_base_url: str = ""
    max_body_bytes: int = Field(10 * 2**20, ge=1024)

    @field_validator("public_base_url")
    @classmethod
    def _absolute_base_url(cls, value: str) -> str:
        if value and not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", value):
            raise ValueError("the URL channels call, with its scheme, such as 'https://claims.example.ir'"
                             " (no query); Twilio's signatures are checked against it")
        return value


class IngestSettings(Section):
    # Processes that parse payloads (MIME...) beside the writer; 0 parses in the daemon itself.
    normaliser_processes: int = Field(1, ge=0, le=16)
    # uvloop runs sockets, timers and callbacks in C (docs/decisions.md); "asyncio" is the stdlib's.
    event_loop: EventLoopName = Field("uvloop", validate_default=True)

    @field_validator("event_loop")
    @classmethod
    def _loop_installed(cls, value: str) -> str:
        if value == "uvloop" and importlib.util.find_spec("uvloop") is None:
            raise ValueError('uvloop is not installed here (pip install uvloop; it has no Windows build),'
                             ' or set event_loop = "asyncio"')
        return value


class LogSettings(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class ConsoleSettings(Section):
    # The language of the agent console's own labels (customer text is shown as written).
    # Persian: the agents are Persian speakers; `run.py console --lang en` overrides it.
    language: Literal["fa", "en"] = "fa"


CORE_SECTIONS: dict[str, type[Section]] = {
    "store": StoreSettings,
    "claims": ClaimSettings,
    "http": HttpSettings,
    "ingest": IngestSettings,
    "log": LogSettings,
    "console": ConsoleSettings,
}


class Settings(BaseModel):
    """Validated settings. Connector tables are validated by each connector's own schema and
    kept here as a list of instances per connector kind (a table is one instance named after
    the kind; an array of tables `[[imap]]` with `name = ...` gives several)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    store: StoreSettings = StoreSettings()
    claims: ClaimSettings = ClaimSettings()
    http: HttpSettings = HttpSettings()
    ingest: IngestSettings = IngestSettings()
    log: LogSettings = LogSettings()
    console: ConsoleSettings = ConsoleSettings()
    connectors: dict[str, list[tuple[str, Any]]] = {}
    extra: dict[str, Any] = {}
    source: str = ""

    def connector_instances(self) -> list[tuple[str, str, Any]]:
        """(kind, instance name, validated settings) for every configured connector."""
        return [(kind, name, conf) for kind, items in self.connectors.items() for name, conf in items]


_SECRET_NAME = re.compile(r"(password|passwd|token|secret|api_?key)$", re.IGNORECASE)


def _describe_expected(err: Mapping[str, Any]) -> str:
    message = str(err.get("msg", "a valid value"))
    for prefix in ("Value error, ", "Input should be ", "String should "):
        message = message.removeprefix(prefix)
    return message


def _format_validation_error(prefix: str, exc: ValidationError, overridden: Mapping[str, str]) -> str:
    """One line per fault; a value that came from the environment names its variable (the file
    the message names does not hold it)."""
    lines = []
    for err in exc.errors():
        key = ".".join([prefix, *(str(p) for p in err["loc"])]).strip(".")
        value = err.get("input")
        origin = f" (from {overridden[key]})" if key in overridden else ""
        if err["type"] == "extra_forbidden" and _SECRET_NAME.search(key.rpartition(".")[2]):
            # A secret written into the file: not echoed to a terminal or a CI log, and the way
            # secrets are given named instead.
            lines.append(f"{key}{origin}: unknown key (value not shown: it looks like a secret); secrets are"
                         " never read from the file, only from environment variables (README names each one)")
        elif err["type"] == "extra_forbidden":
            lines.append(f"{key}{origin}: unknown key (value {value!r}); check the spelling against the documented keys")
        elif err["type"] == "missing":
            lines.append(f"{key}: missing; it is required")
        else:
            lines.append(f"{key} = {value!r}{origin}: expected {_describe_expected(err)}")
    return "\n".join(lines)


def _apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """PARVANDEH__SECTION__KEY=value overrides one scalar key. An array or inline table (and a
    quoted TOML string) is parsed as TOML; anything else is kept as the text it is, and the key's
    schema converts it ("2526" to a port number, "true" to a boolean), so that a phone number
    "+982100000000", a numeric Telegram chat id or user name stays the string it is. Returns the
    keys set ("section.key") and the variables that set them."""
    overridden: dict[str, str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = name[len(ENV_PREFIX):].lower().split("__")
        if len(path) < 2 or not all(path):
            raise ConfigError(f"{name}: expected PARVANDEH__SECTION__KEY")
        value: Any = raw
        try:
            parsed = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            pass
        else:
            if isinstance(parsed, (str, list, dict)):
                value = parsed
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if isinstance(child, list):
                raise ConfigError(f"{name}: [{part}] has several instances; set it in the file")
            node = child
        node[path[-1]] = value
        overridden[".".join(path)] = name
    return overridden


def _variables_of(section: str, overridden: Mapping[str, str]) -> str:
    """The environment variables that set keys of `section`, for a message about it."""
    return ", ".join(sorted(v for k, v in overridden.items() if k.split(".")[0] == section))


def _connector_tables(kind: str, table: Any) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(table, dict):
        items = [dict(table)]
    elif isinstance(table, list) and all(isinstance(t, dict) for t in table):
        items = [dict(t) for t in table]
    else:
        raise ConfigError(f"{kind} = {table!r}: expected a table [{kind}] or tables [[{kind}]]")
    named: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(items):
        name = item.pop("name", kind if len(items) == 1 else f"{kind}{index + 1}")
        if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"{kind}[{index}].name = {name!r}: expected a short name of letters, digits, - or _")
        named.append((name, item))
    return named


def load_settings(
    path: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
    connector_schemas: Mapping[str, type[BaseModel]] | None = None,
) -> Settings:
    """Read, merge and validate. `connector_schemas` maps connector kind to its settings model
    (from the connector registry); a table for an unknown kind is an error."""
    environ = os.environ if environ is None else environ
    path = Path(path) if path else DEFAULT_CONFIG_PATH
    data = _read_toml(path)
    in_file = set(data)
    overridden = _apply_env_overrides(data, environ)

    core: dict[str, Any] = {}
    problems: list[str] = []
    for key, model in CORE_SECTIONS.items():
        table = data.pop(key, {})
        if not isinstance(table, dict):
            problems.append(f"{key} = {table!r}: expected a table [{key}]")
            continue
        try:
            core[key] = model(**table)
        except ValidationError as exc:
            problems.append(_format_validation_error(key, exc, overridden))

    schemas = dict(connector_schemas or {})
    connectors: dict[str, list[tuple[str, Any]]] = {}
    extra: dict[str, Any] = {}
    seen_names: set[str] = set()
    for key, table in data.items():
        if key in EXTRA_SECTIONS:
            extra[key] = table
            continue
        if key not in schemas:
            known = sorted([*CORE_SECTIONS, *EXTRA_SECTIONS, *schemas])
            # A mistyped variable makes a section the file does not have: name the variable.
            origin = "" if key in in_file else f" (from {_variables_of(key, overridden)})"
            problems.append(f"{key}{origin}: unknown section; expected one of {', '.join(known)}")
            continue
        if key not in in_file:
            # A connector runs when its table is present: an override must not switch one on.
            names = _variables_of(key, overridden)
            problems.append(f"{key} (from {names}): there is no [{key}] table in the file; an environment"
                            f" override changes a connector's key but does not add the connector: add [{key}]")
            continue
        try:
            instances = _connector_tables(key, table)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        for name, item in instances:
            if name in seen_names:
                problems.append(f"{key}.name = {name!r}: expected a name not used by another connector")
            seen_names.add(name)
            try:
                connectors.setdefault(key, []).append((name, schemas[key](**item)))
            except ValidationError as exc:
                label = key if len(instances) == 1 else f"{key}[{name}]"
                problems.append(_format_validation_error(label, exc, overridden))
    if problems:
        raise ConfigError(f"{path}:\n" + "\n".join(problems))
    return Settings(**core, connectors=connectors, extra=extra, source=str(path))


def console_settings(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> ConsoleSettings:
    """The `[console]` table alone (with its environment overrides), validated as `load_settings`
    validates it. The console runs on an agent's machine: the rest of the file (connector
    plugins, uvloop, secrets) is the daemon's and need not be loadable there."""
    environ = os.environ if environ is None else environ
    path = Path(path) if path else DEFAULT_CONFIG_PATH
    data = _read_toml(path)
    overridden = _apply_env_overrides(data, environ)
    table = data.get("console", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}:\nconsole = {table!r}: expected a table [console]")
    try:
        return ConsoleSettings(**table)
    except ValidationError as exc:
        raise ConfigError(f"{path}:\n" + _format_validation_error("console", exc, overridden)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory; expected a TOML configuration file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {exc.start});"
                          " expected a TOML file saved as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


# Sections validated by other parts of the daemon (routing rules, SLA policies, agents...):
# kept raw here and checked by their owners in check-config.
EXTRA_SECTIONS = frozenset({"routing", "sla", "queues", "workflow", "calendar", "agent_api"})


def secret_from_env(env_name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of the environment variable a `*_env` key names ("" when unset)."""
    if not env_name:
        return ""
    return (os.environ if environ is None else environ).get(env_name, "")


def unwritable_directory(path: Path) -> str | None:
    """Why the daemon could not create files under directory `path` (made on first use, with
    its parents), or None. Checked at start and by check-config: a regular file in the way let
    the daemon start and then quarantined every message with an attachment."""
    place = next((p for p in (path, *path.parents) if p.exists()), None)
    if place is None:
        return None
    if not place.is_dir():
        problem = "is not a directory"
    elif not os.access(place, os.W_OK | os.X_OK):
        problem = "is not writable by this user"
    else:
        return None
    return f"{place} {problem}" + ("" if place == path else f" (so {path} cannot be made)")
