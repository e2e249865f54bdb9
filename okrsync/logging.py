"""The structlog chain: JSON lines for the service, console rendering on a TTY.

Every event passes `redact` last-but-one, so a token registered in `okrsync.redaction` can
never reach a log line, whatever a processor or caller put in the event. Console rendering
writes raw text to a terminal, so there `strip_controls` first removes escape sequences and
control characters from every string (an error can quote a tracker); JSON escapes them itself.
The log file is created 0600.

No rich: exceptions become text (`format_exc_info`) before either renderer, so the console
renderer never needs rich's tracebacks, and structlog is imported without rich at all
(`okrsync._lean_imports`; ≈ 8 MB less in the daemon and every sync).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from datetime import date, datetime
from enum import Enum
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from okrsync.redaction import scrub_value
from okrsync.textsafe import printable

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def json_values(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """Every value as a JSON value, before `redact` and the JSON renderer: a date is its ISO
    text, a dataclass its fields, a set a sorted list, anything else its `str`, never the
    renderer's `repr` fallback (`RecomputeReport(as_of=datetime.date(...))`), which would
    also reach the line after `redact` had looked only at strings."""
    return {k: _json_value(v) for k, v in event.items()}


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_json_value(v) for v in value), key=str)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return _json_value(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return str(value)


def redact(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """Mask registered secrets in every value of the event."""
    return {k: scrub_value(v) for k, v in event.items()}


def strip_controls(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """Terminal control sequences out of every string key and value (console rendering)."""
    return {_printable(k): _printable(v) for k, v in event.items()}


def _printable(value: Any) -> Any:
    # Other values are rendered with repr(), which escapes control characters itself.
    return printable(value) if isinstance(value, str) else value


def open_log_file(path: str) -> TextIO:
    """Append to `path`, creating it 0600 (log lines quote tracker data and hosts)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "a", encoding="utf-8", buffering=1)


def configure(
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    file: str | None = None,
) -> None:
    """Set up structlog once per process. `fmt`: auto (console on a TTY, else JSON)."""
    out = stream or sys.stderr
    if file:
        out = open_log_file(file)  # lives for the process
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    if use_json:
        processors += [json_values, redact, structlog.processors.JSONRenderer()]
    else:
        # Exceptions arrive formatted; plain_traceback only pins the default (rich's, when
        # structlog found rich) so that the console never depends on what got imported first.
        console = structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)
        processors += [strip_controls, redact, console]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )


def quiet_defaults() -> None:
    """Library loggers that would otherwise print request lines with URLs."""
    for name in ("httpx", "httpcore", "apscheduler", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
