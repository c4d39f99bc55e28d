"""Service names as clients see them: which names clash, and who keeps a contested name.

Envoy matches virtual host domains case-insensitively, and every service also answers to
`NAME<suffix>` for each configured domain suffix, so `web` and `WEB` clash, and so do `web`
and `web.svc` under the suffix `.svc`. Envoy rejects a route table with one domain twice
(and with it every later change), so a name is claimed before translation: the first
service to claim a client name keeps it while it exists; a later one is refused.
"""

from __future__ import annotations


class NameClaims:
    """Which service holds each client name (lower-cased domain), and who was refused."""

    def __init__(self, domain_suffixes: tuple[str, ...] = ()) -> None:
        self._suffixes = tuple(suffix.lower() for suffix in domain_suffixes)
        self._holder: dict[str, str] = {}  # client name -> service
        self._held: dict[str, tuple[str, ...]] = {}  # service -> its client names
        self.refused: set[str] = set()

    def client_names(self, service: str) -> tuple[str, ...]:
        """Every domain a client reaches `service` by, lower-cased."""
        base = service.lower()
        return (base, *(base + suffix for suffix in self._suffixes))

    def holds(self, service: str) -> bool:
        """True while `service` holds its client names."""
        return service in self._held

    def claim(self, service: str) -> tuple[str, str] | None:
        """Claim `service`'s client names; or `(holder, name)` of the first one another holds
        (then nothing is claimed and `service` is listed as refused)."""
        if service in self._held:
            return None
        names = self.client_names(service)
        for name in names:
            holder = self._holder.get(name)
            if holder is not None:
                self.refused.add(service)
                return holder, name
        self._holder.update(dict.fromkeys(names, service))
        self._held[service] = names
        self.refused.discard(service)
        return None

    def release(self, service: str) -> None:
        """`service` is gone: free its names for the services refused because of it."""
        for name in self._held.pop(service, ()):
            del self._holder[name]
        self.refused.discard(service)
