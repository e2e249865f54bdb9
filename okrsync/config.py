"""Settings from one TOML file plus the environment; validated, with errors that say the fix.

Secrets are never stored in the file: a connector names the environment variable (`token_env`,
`email_env`) or file (`token_file`) that holds them, and every secret read is registered for
redaction before it can reach a log line.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from okrsync.errors import ConfigError
from okrsync.models import DEFAULT_DROPPED_NAMES
from okrsync.redaction import register_secret
from okrsync.tomlpos import locate, toml_error

CONFIG_ENV = "OKRSYNC_CONFIG"
STORE_URL_ENV = "OKRSYNC_STORE_URL"
_INTERVAL = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


class SignalsConfig(_Strict):
    throughput_window_days: int = Field(default=28, ge=1)
    stale_days: int = Field(default=14, ge=1)
    at_risk_share: float = Field(default=0.15, ge=0)
    outcome_at_risk_margin: float = Field(default=0.15, ge=0)
    divergence_threshold: float = Field(default=0.3, gt=0, le=1)


class ConnectorConfig(_Strict):
    """One `[[connectors]]` section: which tracker, where, with which credentials, how often."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    type: str
    base_url: str
    scope: list[str] = Field(min_length=1)
    flavor: Literal["auto", "cloud", "server"] = "auto"
    email_env: str | None = None
    token_env: str | None = None
    token_file: str | None = None
    workspace: str | None = None
    schedule: str = "every 15m"
    jitter_s: float = Field(default=10.0, ge=0)
    page_size: int | None = Field(default=None, ge=1, le=1000)
    max_in_flight: int | None = Field(default=None, ge=1, le=100)
    max_attempts: int = Field(default=6, ge=1, le=20)
    timeout_s: float = Field(default=30.0, gt=0)
    estimate_field: str | None = None
    dropped_statuses: list[str] = Field(default_factory=lambda: list(DEFAULT_DROPPED_NAMES))
    lookback_minutes: int = Field(default=5, ge=0)
    census_every: int = Field(default=24, ge=1)
    enabled: bool = True

    @field_validator("base_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http(s) URL such as https://example.atlassian.net")
        return v.rstrip("/")

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        parse_schedule(v)
        return v

    def secret(self) -> str:
        """The API token, from `token_env` or `token_file`; registered for redaction."""
        if self.token_env:
            value = os.environ.get(self.token_env, "").strip()
            if not value:
                raise ConfigError(
                    f"connector {self.name!r}: environment variable {self.token_env} "
                    "(named by token_env) is not set; export it before starting okrsync"
                )
        elif self.token_file:
            try:
                value = Path(self.token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(
                    f"connector {self.name!r}: cannot read token_file {self.token_file}: "
                    f"{exc.strerror}"
                ) from None
        else:
            raise ConfigError(
                f"connector {self.name!r}: no credentials; set token_env (an environment "
                "variable name) or token_file"
            )
        register_secret(value)
        return value

    def email(self) -> str | None:
        """The account e-mail for Jira Cloud basic auth, from `email_env`."""
        if not self.email_env:
            return None
        value = os.environ.get(self.email_env, "").strip()
        if not value:
            raise ConfigError(
                f"connector {self.name!r}: environment variable {self.email_env} "
                "(named by email_env) is not set"
            )
        return value


def parse_schedule(text: str) -> tuple[str, Any]:
    """`every 15m` → ("interval", seconds); five cron fields → ("cron", text)."""
    text = text.strip()
    if text.startswith("every "):
        m = _INTERVAL.match(text[6:].strip())
        if not m:
            raise ValueError("use 'every <n><s|m|h|d>' such as 'every 15m', or a cron line")
        return "interval", int(m.group(1)) * _UNITS[m.group(2)]
    if len(text.split()) == 5:
        return "cron", text
    raise ValueError("use 'every <n><s|m|h|d>' such as 'every 15m', or five cron fields")


class Settings(_Strict):
    """The whole configuration file."""

    store: StoreConfig = StoreConfig()
    mappings: MappingsConfig = MappingsConfig()
    logging: LoggingConfig = LoggingConfig()
    service: ServiceConfig = ServiceConfig()
    signals: SignalsConfig = SignalsConfig()
    connectors: list[ConnectorConfig] = Field(default_factory=list)
    base_dir: Path = Path()

    def store_url(self) -> str:
        """The store URL: OKRSYNC_STORE_URL wins over the file; relative SQLite paths are
        resolved against the config file's folder."""
        url = os.environ.get(STORE_URL_ENV) or self.store.url
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


def load_settings(path: Path | None = None) -> Settings:
    """Read and validate the config file (`path`, $OKRSYNC_CONFIG or ./okrsync.toml).

    With no file at all, the built-in defaults are used (SQLite in the current folder,
    mappings from ./mappings, no connectors).
    """
    if path is None:
        env = os.environ.get(CONFIG_ENV)
        path = Path(env) if env else Path("okrsync.toml")
        if not env and not path.exists():
            return Settings(base_dir=Path.cwd())
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc.strerror}", file=str(path)) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise toml_error(path, exc) from None
    try:
        settings = Settings.model_validate({**data, "base_dir": path.parent.resolve()})
    except ValidationError as exc:
        raise _explain(path, text, exc) from None
    names = [c.name for c in settings.connectors]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        second = names.index(dup, names.index(dup) + 1)
        line = locate(text, ("connectors", second, "name"))
        raise ConfigError(
            f"connector name {dup!r} is used twice; every [[connectors]] needs its own name",
            file=str(path),
            line=line,
        )
    return settings


def _explain(path: Path, text: str, exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    key = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(loc[-1]), _known_keys(), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "remove it or check its spelling"
        msg = f"unknown key '{key}'; {hint} (every key is documented in config.example.toml)"
    elif err["type"] == "missing":
        msg = f"missing key '{key}'; it is required (see config.example.toml)"
    else:
        msg = f"key '{key}': {err['msg']}"
    return ConfigError(msg, file=str(path), line=locate(text, loc))


def _known_keys() -> list[str]:
    models: list[type[BaseModel]] = [
        Settings,
        StoreConfig,
        MappingsConfig,
        LoggingConfig,
        ServiceConfig,
        SignalsConfig,
        ConnectorConfig,
    ]
    return sorted({name for m in models for name in m.model_fields})
