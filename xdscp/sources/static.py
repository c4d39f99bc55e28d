"""A source that reads services and policies from a YAML file (`xdscp serve --static`).

The file is the `services:` document of `xdscp.sources.services_doc`, read by the same
strict parser as `serve --config`'s `sources.static.services`: an unknown key or a bad value
is a `ConfigFieldError` at its line (`services.yaml:7: services.web.endpoints[1]: unknown
field 'wieght', did you mean 'weight'?`).

The file is read at start and again whenever its modification time changes (polled every
0.1 s: one stat call) or on `reload()` (SIGHUP); a file that no longer parses keeps the last
good services in force, with the error logged (`static_services_invalid`, the file's path,
line and field).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import structlog

from xdscp.errors import ConfigError, ValidationError
from xdscp.model import ServiceSet
from xdscp.sources.base import Publish, SourceStatus
from xdscp.sources.services_doc import load_services

log = structlog.get_logger(__name__)


def read_services_file(path: Path) -> ServiceSet:
    """The services of the file at `path`: `ConfigFieldError` when it does not validate, a
    plain `ConfigError` when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return load_services(text, str(path))


class StaticSource(SourceStatus):
    """Services from a YAML file (see the module docstring); `last_error` says why the last
    read failed (the last good services stay)."""

    def __init__(self, path: Path, *, poll_s: float = 0.1) -> None:
        self.path = path
        self.poll_s = poll_s
        self._mtime: float | None = None
        self._reload: asyncio.Event | None = None
        super().__init__()

    @property
    def name(self) -> str:
        """Source name for logs and metrics."""
        return "static"

    def reload(self) -> None:
        """Re-read the file now (SIGHUP in `xdscp serve`), without waiting for the next poll."""
        self._mtime = None
        if self._reload is not None:
            self._reload.set()

    def read(self) -> ServiceSet:
        """Read and validate the file now."""
        return read_services_file(self.path)

    async def run(self, publish: Publish) -> None:
        """Publish the file's services, and again after every change, until cancelled."""
        self._reload = asyncio.Event()
        while True:
            try:
                mtime = self.path.stat().st_mtime
                if mtime != self._mtime:
                    self._mtime = mtime
                    services = self.read()
                    publish(services)
                    self._ready, self._error = True, None
                    log.info("static_services_loaded", path=str(self.path), services=len(services))
            except (ConfigError, ValidationError, OSError) as exc:
                self._error = str(exc)
                log.error("static_services_invalid", path=str(self.path), error=str(exc))  # noqa: TRY400 - the reason is the message; no traceback
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._reload.wait()
            self._reload.clear()
