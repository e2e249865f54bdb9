"""`[[notify]]` channels and `[notify_defaults]`: where okrsync sends its notifications
(docs/notifications.md).

A channel names its kind (`slack`, `teams`, `webhook`, `email`) and its own keys; the kind's
model validates the section, so a key of another kind is refused at its file:line like a
connector's. Secrets (a Slack or Teams webhook URL, a generic webhook's signing secret, the
SMTP password) are never in the file: the channel names the environment variable or file
that holds them, and each is registered for redaction the moment it is read.
"""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from okrsync.config_sources import secret_from
from okrsync.errors import ConfigError

EventName = Literal[
    "status", "flag", "forecast", "checkin_reminder", "connector_failing", "connector_recovered"
]
EVENTS: tuple[EventName, ...] = (
    "status",  # a key result's outcome status or a tactic's execution status changed
    "flag",  # a divergence flag appeared or cleared (key result or objective)
    "forecast",  # a tactic's forecast moved past its period end, or back
    "checkin_reminder",  # a key result had no check-in for checkin_reminder_days
    "connector_failing",  # a connector failed connector_failures runs in a row
    "connector_recovered",  # it succeeded again after such a streak
)
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+")


class _Strict(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, populate_by_name=True
    )


class NotifyDefaults(_Strict):
    """`[notify_defaults]`: when events fire and how the sender retries, for every channel."""

    checkin_reminder_days: int = Field(default=7, ge=0, le=366)  # 0: no reminders
    connector_failures: int = Field(default=3, ge=1, le=1000)
    every_s: float = Field(default=5.0, ge=1, le=3600)  # how often the daemon looks and sends
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    max_attempts: int = Field(default=8, ge=1, le=50)
    retry_base_s: float = Field(default=30.0, gt=0, le=86400)  # doubled after each failure


class NotifyChannel(_Strict):
    """The keys every `[[notify]]` channel shares."""

    name: str
    kind: Literal["slack", "teams", "webhook", "email"]
    events: list[EventName] = Field(default_factory=lambda: list(EVENTS))
    objectives: list[str] = Field(default_factory=list)  # empty: every objective
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.fullmatch(v):
            raise ValueError("must be lowercase letters, digits, - and _, such as 'team-slack'")
        return v

    def wants(self, kind: str, objective_id: str | None) -> bool:
        """Whether this channel routes an event of `kind` about `objective_id` (None: an
        event about no objective, such as a connector's, passes the objectives filter)."""
        if not self.enabled or kind not in self.events:
            return False
        return not self.objectives or objective_id is None or objective_id in self.objectives


class UrlChannel(NotifyChannel):
    """A channel posting to a URL kept secret: `url_env` (a variable) or `url_file`."""

    url_env: str | None = None
    url_file: str | None = None

    @model_validator(mode="after")
    def _needs_url(self) -> Self:
        if not (self.url_env or self.url_file):
            raise ValueError(f"a {self.kind} channel needs url_env or url_file (the webhook URL)")
        return self

    def url(self) -> str:
        """The webhook URL, read now and registered for redaction."""
        value = read_secret(self.name, "url_env", self.url_env, "url_file", self.url_file)
        if not re.match(r"^https?://[^/\s]+", value):
            key = "url_env" if self.url_env else "url_file"
            raise ConfigError(
                f"notify channel {self.name!r}: the URL named by {key} is not an http(s) URL"
            )
        return value


class SlackChannel(UrlChannel):
    kind: Literal["slack"] = "slack"


class TeamsChannel(UrlChannel):
    kind: Literal["teams"] = "teams"


class WebhookChannel(UrlChannel):
    """A generic JSON webhook, its body signed with HMAC-SHA256 under its own secret."""

    kind: Literal["webhook"] = "webhook"
    secret_env: str | None = None
    secret_file: str | None = None

    @model_validator(mode="after")
    def _needs_secret(self) -> Self:
        if not (self.secret_env or self.secret_file):
            raise ValueError("a webhook channel needs secret_env or secret_file (its HMAC key)")
        return self

    def secret(self) -> str:
        return read_secret(
            self.name, "secret_env", self.secret_env, "secret_file", self.secret_file
        )


class EmailChannel(NotifyChannel):
    """E-mail over SMTP: STARTTLS by default, credentials from the environment."""

    kind: Literal["email"] = "email"
    smtp_host: str
    smtp_port: int = Field(default=587, ge=1, le=65535)
    starttls: bool = True
    ca_file: str | None = None  # trust this CA (a private relay); default: the system's
    username_env: str | None = None
    password_env: str | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    remind_owners: bool = False  # checkin_reminder also to the key result's owner's address

    @field_validator("sender", "to")
    @classmethod
    def _addresses(cls, v: str | list[str]) -> str | list[str]:
        for address in [v] if isinstance(v, str) else v:
            if not ADDRESS.fullmatch(address.strip()):
                raise ValueError(f"{address!r} is not an e-mail address such as okr@example.com")
        return v

    @model_validator(mode="after")
    def _pair(self) -> Self:
        if bool(self.username_env) != bool(self.password_env):
            raise ValueError("set both username_env and password_env, or neither")
        return self

    def credentials(self) -> tuple[str, str] | None:
        """(user, password) from the environment, registered for redaction; None: no login."""
        if not (self.username_env and self.password_env):
            return None
        user = read_secret(self.name, "username_env", self.username_env, "", None)
        return user, read_secret(self.name, "password_env", self.password_env, "", None)


CHANNEL_MODELS: dict[str, type[NotifyChannel]] = {
    "slack": SlackChannel,
    "teams": TeamsChannel,
    "webhook": WebhookChannel,
    "email": EmailChannel,
}


def channel_model(kind: object) -> type[NotifyChannel] | None:
    """The model of a channel `kind` (None: not a kind okrsync sends to)."""
    return CHANNEL_MODELS.get(kind) if isinstance(kind, str) else None


def unknown_kind(kind: object) -> str:
    kinds = ", ".join(repr(k) for k in CHANNEL_MODELS)
    if kind is None:
        return f"missing key 'kind'; set kind to one of {kinds}"
    return f"kind {kind!r} is not a notification channel; use one of {kinds}"


def read_secret(
    channel: str, env_key: str, env: str | None, file_key: str, file: str | None
) -> str:
    """A channel's secret from the variable `env` or the file `file`, registered for
    redaction; a ConfigError naming the channel and key when it cannot be read."""
    value = secret_from(f"notify channel {channel!r}", env_key, env, file_key, file)
    if value is None:
        raise ConfigError(f"notify channel {channel!r}: set {env_key}")
    return value
