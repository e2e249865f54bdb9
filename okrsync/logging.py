"""The structlog chain: JSON lines for the service, console rendering on a TTY.

Every event passes `redact` last-but-one, so a token registered in `okrsync.redaction` can
never reach a log line, whatever a processor or caller put in the event.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from okrsync.redaction import scrub_value

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


def redact(_logger: WrappedLogger, _name: str, event: EventDict) -> EventDict:
    """Mask registered secrets in every value of the event."""
    return {k: scrub_value(v) for k, v in event.items()}


def configure(
    level: str = "info",
    fmt: str = "auto",
    stream: TextIO | None = None,
    file: str | None = None,
) -> None:
    """Set up structlog once per process. `fmt`: auto (console on a TTY, else JSON)."""
    out = stream or sys.stderr
    if file:
        out = open(file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - lives for the process
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    renderer: Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    processors: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
        renderer,
    ]
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
