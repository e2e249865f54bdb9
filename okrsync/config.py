"""Settings from one TOML file plus the environment; validated, with errors that say the fix.

Secrets are never stored in the file: a connector names the environment variable
(`token_env`) or file (`token_file`) that holds them, and every secret read is registered for
redaction before it can reach a log line.

A `[[connectors]]` section is validated by its plug-in's model (`ConnectorConfig` here holds
the keys every connector shares; a plug-in subclasses it with its own keys and scope rule, so a
third-party tracker adds keys without touching okrsync). Every value is checked at load and a
bad one is a ConfigError naming file:line and the fix: numbers are finite, schedules are real
(cron fields as the scheduler reads them), connector types are installed plug-ins and scopes
have their tracker's shape. Credentials are checked only by the commands that call trackers
(`Settings.check_credentials`), so reports, exports and mapping checks work on a machine
without tokens.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

import structlog
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from okrsync.config_notify import (
    CHANNEL_MODELS,
    NotifyChannel,
    NotifyDefaults,
    channel_model,
    unknown_kind,
)
from okrsync.config_sources import DEFAULT, EnvReader, Loc, Origin, raise_all, secret_from
from okrsync.connector import config_model, installed_types, unknown_type
from okrsync.errors import ConfigError
from okrsync.models import DEFAULT_DROPPED_NAMES, StatusCategory
from okrsync.redaction import register_secret
from okrsync.tomlpos import TomlIndex, toml_error

log = structlog.get_logger("okrsync.config")
CONFIG_ENV = "OKRSYNC_CONFIG"
# Where an error sends the reader: the checkout's file, which installed users print with init.
EXAMPLE = "config.example.toml, which `okrsync init --print` prints"
_INTERVAL = re.compile(r"(\d+)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_MAX_INTERVAL_S = 366 * 86400
DEFAULT_JITTER_S = 10.0
MAX_JITTER_S = 3600
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
_CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")
# The keys naming a file, which a relative path reads from the config file's folder.
_CONNECTOR_FILES = ("token_file", "webhook_secret_file")
_CHANNEL_FILES = ("url_file", "secret_file", "ca_file")
_M = TypeVar("_M", bound=BaseModel)


class _Strict(BaseModel):
    # allow_inf_nan=False: `inf` or `nan` in any float (jitter, timeouts, thresholds) is refused.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class StoreConfig(_Strict):
    url: str = "sqlite:///okrsync.db"
    busy_timeout_ms: int = Field(default=5000, ge=0)
    # Pages already fetched when the store is free are stored together, up to this many items
    # per transaction (1: strictly one page per transaction). A kill replays at most that.
    commit_items: int = Field(default=2000, ge=1, le=100_000)


class MappingsConfig(_Strict):
    paths: list[str] = Field(default_factory=lambda: ["mappings"])


class LoggingConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"
    file: str | None = None


class ServiceConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    enabled: bool = True
    ready_max_failures: int = Field(default=3, ge=1)
    shutdown_timeout_s: float = Field(default=10.0, gt=0)
    # docs/webhooks.md: a delivery body over this is refused (413) without reading it all.
    webhook_max_body_kb: int = Field(default=1024, ge=1, le=65536)


class WebConfig(_Strict):
    """`[web]`: who may read the dashboard and API, and who may write check-ins (docs/web.md).

    auth = "none": reads open, served on loopback only; writes refused. "token": bearer tokens
    (`name:token` lines) from the variable `tokens_env` or the file `tokens_file`. "proxy":
    the user named by `proxy_header`, believed only from the addresses in `trusted_proxies`.
    """

    auth: Literal["none", "token", "proxy"] = "none"
    tokens_env: str | None = None
    tokens_file: str | None = None
    proxy_header: str = Field(default="X-Forwarded-User", pattern=r"^[A-Za-z0-9-]+$")
    trusted_proxies: list[str] = Field(default_factory=list)
    # The dashboard's address as readers reach it; notifications link to its pages.
    public_url: str | None = Field(default=None, pattern=r"^https?://[^/\s]+")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or CIDR network (e.g. 10.0.0.5, 10.0.0.0/24)"
                ) from None
        return [entry.strip() for entry in value]

    @model_validator(mode="after")
    def _auth_needs_its_keys(self) -> Self:
        if self.auth == "token" and not (self.tokens_env or self.tokens_file):
            raise ValueError('auth = "token" needs tokens_env or tokens_file (name:token lines)')
        if self.auth == "proxy" and not self.trusted_proxies:
            raise ValueError('auth = "proxy" needs trusted_proxies: the reverse proxy\'s addresses')
        return self


class SignalsConfig(_Strict):
    throughput_window_days: int = Field(default=28, ge=1)
    stale_days: int = Field(default=14, ge=1)
    at_risk_share: float = Field(default=0.15, ge=0)
    outcome_at_risk_margin: float = Field(default=0.15, ge=0)
    divergence_threshold: float = Field(default=0.3, gt=0, le=1)


class ConnectorConfig(_Strict):
    """One `[[connectors]]` section: which tracker, where, with which credentials, how often.

    The keys every connector shares; a plug-in's `Config` subclasses this with its own keys,
    its scope rule (`scope_problem`) and any extra credential (`credentials`).
    """

    name: str
    type: str
    base_url: str
    scope: list[str] = Field(min_length=1)
    token_env: str | None = None
    token_file: str | None = None
    schedule: str = "every 15m"
    jitter_s: float = Field(default=DEFAULT_JITTER_S, ge=0, le=MAX_JITTER_S, validate_default=True)
    page_size: int | None = Field(default=None, ge=1, le=1000)
    max_in_flight: int | None = Field(default=None, ge=1, le=100)
    max_attempts: int = Field(default=6, ge=1, le=20)
    timeout_s: float = Field(default=30.0, gt=0)
    estimate_field: str | None = None
    dropped_statuses: list[str] = Field(default_factory=lambda: list(DEFAULT_DROPPED_NAMES))
    status_map: dict[str, StatusCategory] = Field(default_factory=dict)
    lookback_minutes: int = Field(default=5, ge=0)
    census_every: int = Field(default=24, ge=1)
    max_response_mb: float = Field(default=64.0, gt=0, le=4096)
    run_deadline_s: float = Field(default=3600.0, gt=0, le=7 * 86400)
    max_pages: int | None = Field(default=None, ge=1)
    enabled: bool = True
    # Webhooks in (docs/webhooks.md): the secret's variable or file; neither: webhooks off.
    webhook_secret_env: str | None = None
    webhook_secret_file: str | None = None
    webhook_coalesce_s: float = Field(default=1.0, ge=0, le=60)

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http(s) URL such as https://example.atlassian.net")
        return v.rstrip("/")

    @field_validator("status_map", mode="before")
    @classmethod
    def _status_map(cls, v: Any) -> Any:
        """Raw status, section or label name → todo | in_progress | done | dropped; names
        compare case-insensitively, so two spellings of one name are refused."""
        if not isinstance(v, dict):
            raise ValueError(  # noqa: TRY004 - pydantic reports ValueError at the key's line
                'must be a table of name = category, e.g. status_map = { "QA" = "in_progress" }'
            )
        seen: dict[str, str] = {}
        allowed = ", ".join(c.value for c in StatusCategory)
        for name, category in v.items():
            folded = name.strip().casefold()
            if not folded:
                raise ValueError("has an empty name; write the status, section or label name")
            if folded in seen:
                raise ValueError(f"names {seen[folded]!r} and {name!r} are the same name")
            seen[folded] = name
            if category not in {c.value for c in StatusCategory}:
                raise ValueError(f"{name!r} = {category!r}: the category must be one of {allowed}")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError(
                "must be lowercase letters, digits, - and _, starting with a letter or digit, "
                "such as 'jira-cloud'"
            )
        return v

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        kind, _ = parse_schedule(v)
        if kind == "cron":
            check_cron(v.strip())
        return v

    @model_validator(mode="before")
    @classmethod
    def _default_jitter(cls, data: Any) -> Any:
        """Unset, `jitter_s` is 10 s or the schedule's interval if that is shorter."""
        if not isinstance(data, dict) or "jitter_s" in data:
            return data
        try:
            kind, seconds = parse_schedule(str(data.get("schedule", "every 15m")))
        except ValueError:
            return data  # the schedule's own error is reported
        if kind == "interval" and seconds < DEFAULT_JITTER_S:
            return {**data, "jitter_s": float(seconds)}
        return data

    @field_validator("jitter_s")
    @classmethod
    def _jitter(cls, v: float, info: ValidationInfo) -> float:
        schedule = info.data.get("schedule")
        if schedule is None:  # the schedule is invalid: its own error is reported
            return v
        kind, seconds = parse_schedule(schedule)
        if kind == "interval" and v > seconds:
            raise ValueError(
                f"jitter_s = {v:g} is longer than the schedule's interval ({seconds} s); "
                f"set jitter_s to at most {seconds} (0: no jitter)"
            )
        return v

    @classmethod
    def scope_problem(cls, scope: str) -> str | None:
        """What is wrong with one `scope` value for this tracker (None: fine)."""
        return None

    @classmethod
    def of(cls, config: ConnectorConfig) -> Self:
        """`config` as this model: a section built with the common keys only is re-validated
        (this model's own keys take their defaults)."""
        if isinstance(config, cls):
            return config
        return cls.model_validate(config.model_dump(exclude_unset=True))

    def credentials(self) -> list[tuple[str | None, Callable[[], object]]]:
        """Each credential as (the key naming it, its reader): checked by `check_credentials`."""
        hook = secret_key(self, "webhook_secret")
        token = secret_key(self, "token")
        return [(token, self.secret), *([(hook, self.webhook_secret)] if hook else [])]

    def webhook_secret(self) -> str | None:
        """The webhook secret from `webhook_secret_env` / `_file` (None: neither is set);
        registered for redaction."""
        return _read_secret(self.name, "webhook_secret", self.webhook_secret_env,
                            self.webhook_secret_file)  # fmt: skip

    def secret(self) -> str:
        """The API token, from `token_env` or `token_file`; registered for redaction."""
        value = _read_secret(self.name, "token", self.token_env, self.token_file)
        if value is None:
            raise ConfigError(
                f"connector {self.name!r}: no credentials; set token_env (an environment "
                "variable name) or token_file"
            )
        return value


def _read_secret(name: str, key: str, env: str | None, file: str | None) -> str | None:
    """A connector's secret `key` from the variable `<key>_env` names, else the file
    `<key>_file` names (None: neither is set); registered for redaction."""
    return secret_from(f"connector {name!r}", f"{key}_env", env, f"{key}_file", file)


def parse_schedule(text: str) -> tuple[str, Any]:
    """`every 15m` → ("interval", seconds); five cron fields → ("cron", text)."""
    text = text.strip()
    if text.startswith("every "):
        m = _INTERVAL.fullmatch(text[6:].strip())
        if not m:
            raise ValueError("use 'every <n><s|m|h|d>' such as 'every 15m', or a cron line")
        seconds = int(m.group(1)) * _UNITS[m.group(2)]
        if not 0 < seconds <= _MAX_INTERVAL_S:
            raise ValueError("the interval must be between 1s and 366d, such as 'every 15m'")
        return "interval", seconds
    if len(text.split()) == 5:
        return "cron", text
    raise ValueError("use 'every <n><s|m|h|d>' such as 'every 15m', or five cron fields")


def check_cron(line: str) -> None:
    """Refuse a cron line the scheduler cannot run, naming the field; or one that never fires."""
    from apscheduler.triggers.cron import CronTrigger  # lazy: ~70 ms, `--version` stays quick

    fields = cron_fields(line)
    for field, value in fields.items():
        try:
            CronTrigger(**{field: value}, timezone=UTC)
        except ValueError as exc:
            raise ValueError(f"cron field {field} {value!r}: {exc}") from None
    if CronTrigger(**fields, timezone=UTC).get_next_fire_time(None, datetime.now(UTC)) is None:
        raise ValueError(f"cron line {line!r} never fires (no such date); fix its day or month")


_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WEEKDAY_NUMBERS = re.compile(r"(\*|\d)(?:-(\d))?(?:/(\d+))?")


def cron_fields(line: str) -> dict[str, str]:
    """The five fields of a crontab line as the scheduler's keywords, with crontab's weekday
    numbers (0 and 7 = Sunday, 1 = Monday) written as names: APScheduler counts 0 as Monday,
    so `1-5` would otherwise run Tuesday to Saturday."""
    fields = dict(zip(_CRON_FIELDS, line.split(), strict=True))
    fields["day_of_week"] = ",".join(_weekday_names(t) for t in fields["day_of_week"].split(","))
    return fields


def _weekday_names(token: str) -> str:
    """One comma-separated weekday term: names pass as they are, numbers become names."""
    m = _WEEKDAY_NUMBERS.fullmatch(token)
    if m is None:
        return token  # names (mon-fri), or a mistake the scheduler will name
    first, last, step = m.groups()
    if first == "*" and last is None and step is None:
        return "*"
    low, high = (0, 6) if first == "*" else (int(first), int(last or first))
    if high > 7 or low > high or (step is not None and int(step) == 0):
        raise ValueError(
            f"cron field day_of_week {token!r}: crontab weekdays are 0-7 (0 and 7 = Sunday) "
            "or names such as mon-fri"
        )
    if first != "*" and last is None and step is not None:
        high = 6  # `1/2`: from Monday on, every second day
    days = range(low, high + 1, int(step or 1))
    return ",".join(dict.fromkeys(_DAY_NAMES[d] for d in days))


class Settings(_Strict):
    """The whole configuration file."""

    store: StoreConfig = StoreConfig()
    mappings: MappingsConfig = MappingsConfig()
    logging: LoggingConfig = LoggingConfig()
    service: ServiceConfig = ServiceConfig()
    signals: SignalsConfig = SignalsConfig()
    web: WebConfig = WebConfig()
    connectors: list[ConnectorConfig] = Field(default_factory=list)
    notify: list[NotifyChannel] = Field(default_factory=list)  # okrsync.config_notify
    notify_defaults: NotifyDefaults = NotifyDefaults()
    base_dir: Path = Path()
    # Where each value came from (by key; a connector's by its name) and the file read.
    _origins: dict[Loc, Origin] = PrivateAttr(default_factory=dict)
    _file: Path | None = PrivateAttr(default=None)

    @property
    def config_file(self) -> Path | None:
        """The file this was loaded from (None: defaults and the environment only)."""
        return self._file

    def origin(self, *loc: str) -> Origin:
        """Where the value of `loc` (`"store", "url"` or `"connectors", name, key`) came from."""
        return self._origins.get(loc, DEFAULT)

    def check_credentials(self, only: str | None = None) -> None:
        """Refuse enabled connectors (or `only`) whose token or e-mail cannot be read, naming
        every one at once (its file:line or variable).

        Asked by the commands that call trackers (sync, run), so reports, exports and mapping
        checks keep working without tokens. A token file others can read gets a warning.
        """
        configs = [self.connector(only)] if only else [c for c in self.connectors if c.enabled]
        problems: list[ConfigError] = []
        for cc in configs:
            for key, read in cc.credentials():
                try:
                    read()
                except ConfigError as exc:
                    problems.append(self._error_at(cc.name, key, str(exc)))
            _warn_if_shared(cc)
        raise_all(problems)

    def _error_at(self, name: str, key: str | None, message: str) -> ConfigError:
        loc = ("connectors", name, key) if key else ("connectors", name)
        return self.origin(*loc).error(message)

    def store_url(self) -> str:
        """The store URL (`store.url`, which OKRSYNC_STORE__URL or OKRSYNC_STORE_URL may set);
        relative SQLite paths are resolved against the config file's folder."""
        url = self.store.url
        if "@" in url:
            creds = url.split("://", 1)[-1].rsplit("@", 1)[0]
            register_secret(creds.partition(":")[2])
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rel = url.removeprefix("sqlite:///")
            if rel and rel != ":memory:":
                url = f"sqlite:///{(self.base_dir / rel).resolve()}"
        return url

    def mapping_paths(self) -> list[Path]:
        return [(self.base_dir / p) for p in self.mappings.paths]

    def connector(self, name: str) -> ConnectorConfig:
        for c in self.connectors:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.connectors) or "none configured"
        raise ConfigError(f"no connector named {name!r}; configured: {known}")


def set_flags(flags: Mapping[str, tuple[str, object]]) -> None:
    """Command-line values of keys (`"logging.level": ("--log-level", "debug")`): they win over
    the environment and the file in every later load of this process (a SIGHUP reload too)."""
    _FLAGS.clear()
    _FLAGS.update(flags)


def load_settings(path: Path | None = None) -> Settings:
    """Read and validate the config (`path`, $OKRSYNC_CONFIG or ./okrsync.toml), with the
    environment's `OKRSYNC_<SECTION>__<KEY>` values and the command-line flags over it.

    With no file at all, the built-in defaults (and the environment) are used: SQLite in the
    current folder, mappings from ./mappings, no connectors. Every problem is reported at
    once (a ConfigProblems when there are several), each at its file:line or variable.
    """
    path = _config_path(path)
    if path is None:
        return _Loader(None, "", {}).settings(os.environ)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", file=str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise toml_error(path, exc) from None
    return _Loader(path, text, data).settings(os.environ)


def _config_path(path: Path | None) -> Path | None:
    if path is not None:
        return path
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env)
    default = Path("okrsync.toml")
    return default if default.exists() else None


class _Loader:
    """One load: the file's data with the environment and flags over it, every problem kept."""

    def __init__(self, path: Path | None, text: str, data: dict[str, Any]) -> None:
        self.path = path
        self.index = TomlIndex(text)
        self.file_data = data
        self.data: dict[str, Any] = dict(data)
        self.problems: list[ConfigError] = []
        self.set_by: dict[Loc, Origin] = {}  # keys set by a variable or a flag

    def settings(self, environ: Mapping[str, str]) -> Settings:
        self._top_keys()
        raw = self._raw_connectors()
        self._overlay(raw, environ)
        sections = {name: self._section(name, model) for name, model in _SECTIONS.items()}
        found = [self._connector(i, item) for i, item in enumerate(raw)]
        connectors = [(i, cc) for i, cc in enumerate(found) if cc is not None]
        self._duplicates(connectors)
        self._scopes(raw)
        base = self.path.parent.resolve() if self.path else Path.cwd()
        channels = self._notify_channels(base)
        raise_all(self.problems)
        settings = Settings.model_validate(
            {
                **sections,
                "connectors": [cc for _, cc in connectors],
                "notify": channels,
                "base_dir": base,
            }
        )
        resolved = [_resolve_files(cc, base, _CONNECTOR_FILES) for cc in settings.connectors]
        settings = settings.model_copy(update={"connectors": resolved})
        settings._origins = self._origins(settings, connectors)
        settings._file = self.path
        return settings

    def _top_keys(self) -> None:
        for key in self.data:
            if key not in (*_SECTIONS, "connectors", "notify"):
                hint = _unknown_key_hint(key, None)
                self._problem((key,), f"unknown key '{key}'; {hint} (see {EXAMPLE})")

    def _raw_connectors(self) -> list[Any]:
        raw = self.data.get("connectors", [])
        if isinstance(raw, list):
            return list(raw)
        self._problem(("connectors",), "must be sections written [[connectors]], one each")
        return []

    def _overlay(self, raw: list[Any], environ: Mapping[str, str]) -> None:
        """The environment's values, then the flags', over the file's."""
        named = [(_name_of(item), _model_of(item)) for item in raw]
        env = EnvReader(_SECTIONS, named)
        env.read(environ)
        self.problems.extend(env.problems)
        for ev in env.values:
            self._set(raw, ev.loc, ev.value, Origin("env", ev.var))
        for dotted, (flag, value) in _FLAGS.items():
            section, key = dotted.split(".")
            self._set(raw, (section, key), value, Origin("flag", flag))

    def _set(self, raw: list[Any], loc: Loc, value: object, origin: Origin) -> None:
        if loc[0] == "connectors":
            i, key = int(loc[1]), str(loc[2])
            if isinstance(raw[i], dict):
                raw[i] = {**raw[i], key: value}
                self.set_by[loc] = origin
            return
        section, key = str(loc[0]), str(loc[1])
        table = self.data.get(section, {})
        if isinstance(table, dict):  # else the file's own error is reported
            self.data[section] = {**table, key: value}
            self.set_by[loc] = origin

    def _section(self, name: str, model: type[BaseModel]) -> BaseModel | None:
        raw = self.data.get(name, {})
        if not isinstance(raw, dict):
            self._problem((name,), f"'{name}' must be a table, written [{name}]")
            return None
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            self._explain(exc, (name,), None)
            return None

    def _connector(self, i: int, raw: object) -> ConnectorConfig | None:
        """One `[[connectors]]` table validated by its plug-in's model (an unknown type is
        refused at its line)."""
        if not isinstance(raw, dict):
            self._problem(("connectors", i), "each connector must be a [[connectors]] table")
            return None
        kind = raw.get("type")
        if isinstance(kind, str) and (problem := unknown_type(kind)):
            self._problem(("connectors", i, "type"), f"connector {_name_of(raw)!r}: {problem}")
            return None
        model = _model_of(raw)
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            self._explain(exc, ("connectors", i), model)
            return None

    def _notify_channels(self, base: Path) -> list[NotifyChannel]:
        """Every `[[notify]]` table validated by its kind's model (okrsync.config_notify);
        an unknown kind, key or a name used twice is refused at its line."""
        raw = self.data.get("notify", [])
        if not isinstance(raw, list):
            self._problem(("notify",), "must be sections written [[notify]], one per channel")
            return []
        channels: list[NotifyChannel] = []
        for i, item in enumerate(raw):
            channel = self._notify_channel(i, item)
            if channel is not None and channel.name in {c.name for c in channels}:
                self._problem(("notify", i, "name"), f"notify name {channel.name!r} is used twice")
            elif channel is not None:
                channels.append(_resolve_files(channel, base, _CHANNEL_FILES))
        return channels

    def _notify_channel(self, i: int, raw: object) -> NotifyChannel | None:
        if not isinstance(raw, dict):
            self._problem(("notify", i), "each channel must be a [[notify]] table")
            return None
        model = channel_model(raw.get("kind"))
        if model is None:
            where = ("notify", i, "kind") if "kind" in raw else ("notify", i)
            self._problem(
                where, f"notify channel {_name_of(raw)!r}: {unknown_kind(raw.get('kind'))}"
            )
            return None
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            self._explain(exc, ("notify", i), None)
            return None

    def _duplicates(self, connectors: list[tuple[int, ConnectorConfig]]) -> None:
        seen: set[str] = set()
        for i, cc in connectors:
            if cc.name in seen:
                self._problem(
                    ("connectors", i, "name"),
                    f"connector name {cc.name!r} is used twice; every [[connectors]] needs "
                    "its own name",
                )
            seen.add(cc.name)

    def _scopes(self, raw: list[Any]) -> None:
        """Each connector's scopes have its tracker's shape (the plug-in's rule), checked on
        the raw values so a section with other problems still has its scopes checked."""
        for i, item in enumerate(raw):
            scopes = item.get("scope") if isinstance(item, dict) else None
            if not isinstance(scopes, list) or unknown_type(str(item.get("type"))):
                continue
            model = _model_of(item)
            for scope in scopes:
                if isinstance(scope, str) and (problem := model.scope_problem(scope)):
                    name = _name_of(item)
                    self._problem(("connectors", i, "scope"), f"connector {name!r}: {problem}")

    def _explain(self, exc: ValidationError, within: Loc, model: type[BaseModel] | None) -> None:
        """Every error of `exc` (raised for the table at `within`, by `model`) at its place."""
        for err in exc.errors():
            loc = (*within, *err["loc"])
            key = ".".join(str(p) for p in loc)
            if err["type"] == "extra_forbidden":
                hint = _unknown_key_hint(str(loc[-1]), model)
                msg = f"unknown key '{key}'; {hint} (every key is in {EXAMPLE})"
            elif err["type"] == "missing":
                msg = f"missing key '{key}'; it is required (see {EXAMPLE})"
            else:
                msg = f"key '{key}': {str(err['msg']).removeprefix('Value error, ')}"
            self._problem(loc, msg)

    def _problem(self, loc: Loc, message: str) -> None:
        self.problems.append(self._origin(_key_loc(loc)).error(message))

    def _origin(self, loc: Loc) -> Origin:
        """Where the value at `loc` was set: a variable or flag, else its file line."""
        for n in range(len(loc), 0, -1):
            if loc[:n] in self.set_by:
                return self.set_by[loc[:n]]
        if self.path is None:
            return DEFAULT
        return Origin("file", str(self.path), self.index.line(loc))

    def _origins(
        self, settings: Settings, connectors: list[tuple[int, ConnectorConfig]]
    ) -> dict[Loc, Origin]:
        """Every key's origin, a connector's by its name: ("connectors", name, key)."""
        out: dict[Loc, Origin] = {}
        for name in _SECTIONS:
            table = self.file_data.get(name, {})
            for key in type(getattr(settings, name)).model_fields:
                out[(name, key)] = self._origin_if((name, key), key in table)
        raw = self.file_data.get("connectors", [])
        for i, cc in connectors:
            out[("connectors", cc.name)] = self._origin(("connectors", i))
            for key in type(cc).model_fields:
                out[("connectors", cc.name, key)] = self._origin_if(
                    ("connectors", i, key), key in raw[i]
                )
        channels = self.data.get("notify", [])
        for i, table in enumerate(channels if isinstance(channels, list) else []):
            if not isinstance(table, dict) or not isinstance(table.get("name"), str):
                continue
            for key in table:
                out[("notify", table["name"], key)] = self._origin(("notify", i, key))
        return out

    def _origin_if(self, loc: Loc, in_file: bool) -> Origin:
        return self._origin(loc) if in_file or loc in self.set_by else DEFAULT


def _name_of(raw: object) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return name if isinstance(name, str) else ""


def _model_of(raw: object) -> type[ConnectorConfig]:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if isinstance(kind, str) and not unknown_type(kind):
        return config_model(kind)
    return ConnectorConfig


def connector_config(data: Mapping[str, Any]) -> ConnectorConfig:
    """A connector section (a dict, as in the file) validated by its plug-in's model."""
    kind = data.get("type")
    model = config_model(kind) if isinstance(kind, str) else ConnectorConfig
    return model.model_validate(dict(data))


def scope_problem(kind: str, scope: str) -> str | None:
    """What is wrong with `scope` for a connector of type `kind` (None: fine, or not known)."""
    if unknown_type(kind):
        return None
    return config_model(kind).scope_problem(scope)


def _resolve_files(model: _M, base: Path, keys: tuple[str, ...]) -> _M:
    """A relative file key (a token, a secret, a CA) is read from the config file's folder,
    as the store is."""
    update = {
        key: str(base / Path(value).expanduser())
        for key in keys
        if isinstance(value := getattr(model, key, None), str) and value
    }
    return model.model_copy(update=update) if update else model


def secret_key(cc: ConnectorConfig, secret: Literal["token", "webhook_secret"]) -> str | None:
    """The key the connector reads `secret` from: `<secret>_env`, else `<secret>_file` (None:
    neither is set: for a token the section is at fault, for a webhook secret webhooks are
    off unless the tracker chooses one)."""
    env, file = f"{secret}_env", f"{secret}_file"
    return env if getattr(cc, env) else file if getattr(cc, file) else None


def _warn_if_shared(cc: ConnectorConfig) -> None:
    """A token file that group or others may read is logged once per check, with the fix."""
    if not cc.token_file:
        return
    try:
        mode = Path(cc.token_file).stat().st_mode & 0o777
    except OSError:
        return
    if mode & 0o077:
        log.warning(
            "config.token_file_readable",
            connector=cc.name,
            file=cc.token_file,
            mode=f"{mode:03o}",
            hint=f"chmod 600 {cc.token_file}",
        )


def _unknown_key_hint(name: str, model: type[BaseModel] | None) -> str:
    """Another plug-in's key (`email_env` in a GitHub section), a near spelling, or neither."""
    if model is not None:
        owners = [k for k in installed_types() if name in config_model(k).model_fields]
        if owners:
            kinds = " and ".join(f"type = {k!r}" for k in owners)
            return f"it belongs to {kinds} connectors only: remove it from this section"
    known = sorted(model.model_fields) if model else _known_keys()
    close = difflib.get_close_matches(name, known, n=1)
    return f"did you mean '{close[0]}'?" if close else "remove it or check its spelling"


def _key_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """An item of an inline list (`scope[1]`) sits on its key's line."""
    while len(loc) > 2 and isinstance(loc[-1], int):
        loc = loc[:-1]
    return loc


_SECTIONS: dict[str, type[BaseModel]] = {
    "store": StoreConfig,
    "mappings": MappingsConfig,
    "logging": LoggingConfig,
    "service": ServiceConfig,
    "signals": SignalsConfig,
    "web": WebConfig,
    "notify_defaults": NotifyDefaults,
}
_FLAGS: dict[str, tuple[str, object]] = {}


def _known_keys() -> list[str]:
    models: list[type[BaseModel]] = [
        Settings,
        StoreConfig,
        MappingsConfig,
        LoggingConfig,
        ServiceConfig,
        SignalsConfig,
        WebConfig,
        ConnectorConfig,
        NotifyDefaults,
        *CHANNEL_MODELS.values(),
    ]
    return sorted({name for m in models for name in m.model_fields})
