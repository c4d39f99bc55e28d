"""A source that reads services and policies from a YAML file, validated like etcd entries.

    services:
      web:
        policy: {lb: weighted_round_robin}        # any policy field; optional
        endpoints:
          - {address: 10.0.0.1, port: 8080, weight: 3, locality: {zone: a}}
          - {address: 10.0.0.2, port: 8080, priority: 1, health: degraded}

Endpoint fields are those of the native etcd registration format; addresses must be IPs.
The file is read at start and again whenever its modification time changes (polled every
0.1 s: one stat call); a file
that no longer parses keeps the last good services in force, with an error logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import structlog
import yaml

from xdscp.errors import ConfigError, ValidationError
from xdscp.model import Endpoint, Service, ServiceSet
from xdscp.sources.base import Publish, SourceStatus
from xdscp.sources.registry_format import parse_native_value, parse_policy

log = structlog.get_logger(__name__)


def parse_endpoint_entry(service: str, index: int, entry: Any) -> Endpoint:
    """One endpoint as the services file (and the registry) writes it: a mapping with
    `address`, `port`, `weight`, `locality: {region, zone, sub_zone}`, `priority`, `health`,
    `metadata`, `hash_key`."""
    if isinstance(entry, dict) and {"zone", "region", "sub_zone"} & entry.keys():
        raise ValidationError("locality", "goes in `locality: {region, zone, sub_zone}`")
    reg = parse_native_value(service, str(index), json.dumps(entry).encode())
    return Endpoint(
        reg.host, reg.port, reg.weight, reg.locality, reg.priority, reg.health, reg.metadata,
        reg.hash_key,
    )  # fmt: skip


def _service(name: str, spec: Any) -> Service:
    if not isinstance(spec, dict):
        raise ValidationError(f"services.{name}", "must be a mapping with endpoints and policy")
    try:
        endpoints = tuple(
            parse_endpoint_entry(name, i, e) for i, e in enumerate(spec.get("endpoints") or [])
        )
        if "policy" in spec:
            return Service(name, endpoints, parse_policy(json.dumps(spec["policy"]).encode()))
        return Service(name, endpoints)
    except ValidationError as error:
        raise ValidationError(f"services.{name}.{error.field}", error.message) from None


def load_services(text: str) -> dict[str, Service]:
    """Parse the file's text; raise ValidationError naming the first bad field."""
    document = yaml.safe_load(text) or {}
    services = document.get("services") if isinstance(document, dict) else None
    if not isinstance(services, dict):
        raise ValidationError("services", "the file needs a `services:` mapping")
    return {str(name): _service(str(name), spec) for name, spec in services.items()}


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
        try:
            return load_services(self.path.read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc}") from None

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
            except (ConfigError, ValidationError, OSError, yaml.YAMLError) as exc:
                self._error = str(exc)
                log.error("static_services_invalid", path=str(self.path), error=str(exc))  # noqa: TRY400 - the reason is the message; no traceback
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):
                    await self._reload.wait()
            self._reload.clear()
