"""Where each setting comes from: defaults, the file, the environment or a command-line flag.

Every key can be set from the environment as `OKRSYNC_<SECTION>__<KEY>` (upper case, two
underscores between the parts), e.g. `OKRSYNC_STORE__URL` or `OKRSYNC_SIGNALS__STALE_DAYS`; a
connector's key as `OKRSYNC_CONNECTORS__<NAME>__<KEY>`, where NAME is its `name` upper-cased
with `-` written `_` (`jira-cloud` → `OKRSYNC_CONNECTORS__JIRA_CLOUD__SCHEDULE`). Values are
read as TOML values (`14`, `true`, `["a", "b"]`, `{ "QA" = "in_progress" }`); anything that is
not one is taken as text, so `OKRSYNC_STORE__URL=postgresql+psycopg://...` needs no quotes.
A variable with `__` that names no key is an error (a misspelt one would otherwise be silently
ignored); variables without `__` (token variables such as `OKRSYNC_JIRA_TOKEN`) are not read.

Precedence: command-line flags > environment > file > defaults. `OKRSYNC_STORE_URL` (the older
name) still sets `store.url`; `OKRSYNC_STORE__URL` wins when both are set.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from okrsync.errors import ConfigError
from okrsync.redaction import register_secret

ENV_PREFIX = "OKRSYNC_"
SEP = "__"
STORE_URL_ENV = "OKRSYNC_STORE_URL"
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Origin:
    """Where one value came from: `default`, `file` (name, line), `env` (variable), `flag`."""

    kind: str
    name: str = ""
    line: int | None = None

    def __str__(self) -> str:
        if self.kind == "file":
            return f"file {self.name}:{self.line}" if self.line else f"file {self.name}"
        return "default" if self.kind == "default" else f"{self.kind} {self.name}"

    def error(self, message: str) -> ConfigError:
        """`message` located at this origin: file:line, the variable or the flag."""
        if self.kind == "file":
            return ConfigError(message, file=self.name, line=self.line)
        if self.kind == "env":
            return ConfigError(f"environment variable {self.name}: {message}")
        if self.kind == "flag":
            return ConfigError(f"option {self.name}: {message}")
        return ConfigError(message)


DEFAULT = Origin("default")


class ConfigProblems(ConfigError):
    """Every problem of one configuration, each on its own line with its place and fix."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        head = f"{len(problems)} problems in the configuration (fix them all, then run again):"
        super().__init__("\n".join([head, *(f"  {p}" for p in problems)]))


def raise_all(problems: list[ConfigError]) -> None:
    """Nothing for no problem; one problem as itself; several together."""
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ConfigProblems(problems)


def env_name(connector: str) -> str:
    """The NAME part of a connector's variables: `jira-cloud` → `JIRA_CLOUD`."""
    return connector.upper().replace("-", "_")


@dataclass
class EnvValue:
    """One variable's value for the key at `loc` (a connector's by its index in the file)."""

    var: str
    loc: Loc
    value: object


@dataclass
class EnvReader:
    """Reads the `OKRSYNC_…__…` variables against the file's sections and connectors."""

    sections: Mapping[str, type[BaseModel]]
    connectors: Sequence[tuple[str, type[BaseModel]]]  # (name, model) of each file section
    values: list[EnvValue] = field(default_factory=list)
    problems: list[ConfigError] = field(default_factory=list)

    def read(self, environ: Mapping[str, str]) -> None:
        for var in sorted(environ):
            if var.startswith(ENV_PREFIX) and SEP in var:
                self._one(var, environ[var])
        if STORE_URL_ENV in environ and "OKRSYNC_STORE__URL" not in environ:
            self.values.append(EnvValue(STORE_URL_ENV, ("store", "url"), environ[STORE_URL_ENV]))

    def _one(self, var: str, text: str) -> None:
        parts = var.removeprefix(ENV_PREFIX).split(SEP)
        if parts[0] == "CONNECTORS" and len(parts) == 3:
            self._connector(var, parts[1], parts[2], text)
            return
        section, key = (parts[0].lower(), parts[1].lower()) if len(parts) == 2 else ("", "")
        model = self.sections.get(section)
        if model is None or key not in model.model_fields:
            self._unknown(var)
            return
        self.values.append(EnvValue(var, (section, key), parse_value(text, model, key)))

    def _connector(self, var: str, name: str, key: str, text: str) -> None:
        matches = [(i, m) for i, (n, m) in enumerate(self.connectors) if env_name(n) == name]
        if not matches:
            known = ", ".join(env_name(n) for n, _ in self.connectors) or "none configured"
            self.problems.append(
                Origin("env", var).error(
                    f"no connector whose name reads {name} (its name upper-cased, - as _); "
                    f"the config file defines: {known}. The environment overrides keys of "
                    "connectors defined in the file; it does not add connectors"
                )
            )
            return
        if len(matches) > 1:
            names = " and ".join(repr(self.connectors[i][0]) for i, _ in matches)
            self.problems.append(
                Origin("env", var).error(f"{name} names both connectors {names}; rename one")
            )
            return
        i, model = matches[0]
        field_name = key.lower()
        if field_name == "name" or field_name not in model.model_fields:
            self._unknown(
                var,
                [
                    f"{ENV_PREFIX}CONNECTORS{SEP}{name}{SEP}{k.upper()}"
                    for k in model.model_fields
                    if k != "name"
                ],
            )
            return
        value = parse_value(text, model, field_name)
        self.values.append(EnvValue(var, ("connectors", i, field_name), value))

    def _unknown(self, var: str, known: list[str] | None = None) -> None:
        if known is None:
            known = [
                f"{ENV_PREFIX}{s.upper()}{SEP}{k.upper()}"
                for s, m in self.sections.items()
                for k in m.model_fields
            ]
        close = difflib.get_close_matches(var, known, n=1, cutoff=0.8)
        hint = f"did you mean {close[0]}?" if close else "check its spelling or unset it"
        self.problems.append(
            Origin("env", var).error(
                f"names no config key; {hint} (variables are OKRSYNC_<SECTION>__<KEY> and "
                "OKRSYNC_CONNECTORS__<NAME>__<KEY>; every key is in config.example.toml, which "
                "`okrsync init --print` prints)"
            )
        )


def parse_value(text: str, model: type[BaseModel], key: str) -> object:
    """A variable's text as a TOML value; text that is not one (or a text key) stays text.

    An empty value unsets a key whose default is unset (None).
    """
    info = model.model_fields[key]
    if not text.strip() and info.default is None:
        return None
    if _text_only(info.annotation) and not text.lstrip().startswith(('"', "'")):
        return text
    try:
        parsed = tomllib.loads(f"v = {text.strip()}")
    except tomllib.TOMLDecodeError:
        return text
    return parsed["v"] if list(parsed) == ["v"] else text


def _text_only(annotation: Any) -> bool:
    return annotation is str or annotation == (str | None)


def mask_url(url: str) -> str:
    """A URL with its password written `***`."""
    return re.sub(r"(://[^/@:]*:)[^@/]*@", r"\1***@", url)


def is_secret_key(key: str) -> bool:
    """A key whose value would be a secret itself (names of variables and files are not)."""
    if key.endswith(("_env", "_file")):
        return False
    return any(word in key for word in ("token", "secret", "password", "api_key"))


def secret_from(
    who: str, env_key: str, env: str | None, file_key: str, file: str | None
) -> str | None:
    """A secret from the variable `env`, else the file `file` (None: neither is named),
    registered for redaction; `who` ("connector 'gh'", "notify channel 'ops'") and the keys
    naming them start each ConfigError."""
    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(
                f"{who}: environment variable {env} (named by {env_key}) is not set; export it "
                "before starting okrsync"
            )
    elif file:
        try:
            value = Path(file).expanduser().read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(
                f"{who}: cannot read {file_key} {file}: {why}; check the path (a relative one "
                "is read from the config file's folder) and that okrsync's user can read it"
            ) from None
        if not value:
            raise ConfigError(f"{who}: {file_key} {file} is empty; put the secret in it")
    else:
        return None
    register_secret(value)
    return value
