"""The structlog chain: JSON lines for the service, console rendering on a TTY.

Every event passes `redact` last-but-one, so a token registered in `okrsync.redaction` can
never reach a log line, whatever a processor or caller put in the event. Console rendering
writes raw text to a terminal, so there `strip_controls` first removes escape sequences and
control characters from every string (an error can quote a tracker); JSON escapes them itself.
The log file is created 0600.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from pathlib import Path
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


def readable_by_others(path: Path) -> str | None:
    """A warning when `path` is group- or world-readable (a token file should be 0600)."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if not mode & (stat.S_IRGRP | stat.S_IROTH):
        return None
    return (
        f"{path} is readable by {'others' if mode & stat.S_IROTH else 'its group'} "
        f"(mode {mode:04o}); it holds a credential: chmod 600 {path}"
    )


def warn_if_readable(path: Path) -> str | None:
    """Warn (log when configured, else stderr) that `path` is readable by others; the text."""
    message = readable_by_others(path)
    if message is None:
        return None
    if structlog.is_configured():
        structlog.get_logger("okrsync.config").warning("file.readable_by_others", warning=message)
    else:
        sys.stderr.write(f"warning: {message}\n")
    return message


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
        processors += [redact, structlog.processors.JSONRenderer()]
    else:
        processors += [strip_controls, redact, structlog.dev.ConsoleRenderer()]
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
