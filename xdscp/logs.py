"""structlog configuration, called by entry points only (never at import).

Long-running commands (`LONG_RUNNING`: serve, register, backend, demo) log events: human
output on a terminal, one JSON object per line otherwise (for log collectors). Short-lived
commands (everything else) print what they did themselves; their events (an unreachable
etcd endpoint, ...) are one human line each, `warning: EVENT (key=value ...)`, warnings and
errors only unless `--log-level` is given, never JSON unless `--log-format json` asks for it.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

LogFormat = Literal["auto", "console", "json"]
LONG_RUNNING = frozenset({"serve", "register", "backend", "demo"})
"""The commands that run until stopped; every other command is short-lived."""


def one_line(_: Any, level: str, event: MutableMapping[str, Any]) -> str:
    """`warning: etcd endpoint unreachable (endpoint=http://...)`: one line, no timestamp."""
    name = event.pop("event", "")
    event.pop("timestamp", None)
    event.pop("level", None)
    failure = event.pop("exception", None)
    if failure:  # the last line of a traceback says what failed
        event["exception"] = str(failure).strip().splitlines()[-1]
    fields = " ".join(f"{key}={value}" for key, value in event.items())
    return f"{level}: {str(name).replace('_', ' ')}" + (f" ({fields})" if fields else "")


def _drop_below_warning(_: Any, level: str, event: MutableMapping[str, Any]) -> Any:
    if level in ("debug", "info"):
        raise structlog.DropEvent
    return event


def configure_logging(
    level: str = "info", fmt: LogFormat = "auto", *, short_lived: bool = False,
    quiet: bool = False,
) -> None:  # fmt: skip
    """Configure structlog: human output on a TTY, one JSON object per line otherwise; with
    `short_lived` and `fmt` auto, one plain line per event wherever stderr goes; `quiet`
    drops debug and info events.

    The processor list is changed in place, never replaced: loggers cached before (a module's
    logger used once) follow the new configuration too."""
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        msg = f"unknown log level {level!r}"
        raise ValueError(msg)
    use_console = sys.stderr.isatty() if fmt == "auto" else fmt == "console"
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    stamp: list[structlog.typing.Processor] = [
        structlog.processors.TimeStamper(fmt="iso", utc=True)
    ]
    if short_lived and fmt == "auto":
        renderer, stamp = one_line, []
    processors: list[structlog.typing.Processor] = structlog.get_config()["processors"]
    processors[:] = [
        *([_drop_below_warning] if quiet else []),
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        *stamp,
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        renderer,
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
