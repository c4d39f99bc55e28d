"""What every reference balancer offers: choose a host, hash a request, track active requests."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from xdscp.balancer.hash.request import request_hash
from xdscp.balancer.hosts import Host, HostSet
from xdscp.balancer.policy import LbSettings
from xdscp.model import PriorityCounts, PriorityLoad, priority_loads


class Balancer:
    """A balancer over one cluster's hosts. Subclasses implement `choose`.

    `hosts` lists every host of the cluster in CLA order, excluded ones included.
    """

    def __init__(self, hosts: Sequence[Host], settings: LbSettings, rng: random.Random) -> None:
        self.hosts: tuple[Host, ...] = tuple(hosts)
        self.settings = settings
        self._rng = rng

    def rand64(self) -> int:
        """A uniformly random 64-bit value (Envoy's `random_.random()`)."""
        return self._rng.getrandbits(64)

    def choose(self, hash_key: int | None = None) -> Host | None:
        """The host for one request; None when the client has no host to send it to."""
        raise NotImplementedError

    def request_hash(
        self,
        *,
        headers: Mapping[str, str | Sequence[str]] | None = None,
        source_ip: str | None = None,
        cookies: Mapping[str, str] | None = None,
        query: Mapping[str, str | Sequence[str]] | None = None,
        route_policies: Sequence[Any] = (),
    ) -> int | None:
        """The request hash under the cluster's hash policy (or `route_policies` when the
        cluster carries none, as a route's policy applies then); None when nothing hashes."""
        policies = self.usable_hash_policies(self.settings.hash_policies or tuple(route_policies))
        if not policies:
            return None
        return request_hash(
            policies, headers=headers, source_ip=source_ip, cookies=cookies, query=query
        )

    def usable_hash_policies(self, policies: Sequence[Any]) -> Sequence[Any]:
        """The hash policies this client evaluates (Envoy: all of them)."""
        return policies

    def start(self, host: Host) -> None:
        """Mark one more active request on `host` (least request reads it)."""
        host.active += 1

    def finish(self, host: Host) -> None:
        """Mark one active request on `host` as finished."""
        if host.active > 0:
            host.active -= 1


class PriorityBalancer(Balancer):
    """Envoy's balancers over priorities: the priority load (with panic) computed once.

    `overprovisioning` and `weighted_priority_health` are the CLA's; a subclass builds its
    own per-priority state in `_setup`, called once the load is known.
    """

    def __init__(
        self,
        sets: Sequence[HostSet],
        settings: LbSettings,
        rng: random.Random,
        *,
        overprovisioning: int = 140,
        weighted_priority_health: bool = False,
    ) -> None:
        super().__init__([h for s in sets for h in s.hosts], settings, rng)
        self.host_sets = list(sets)
        self.overprovisioning = overprovisioning
        self.load: PriorityLoad = priority_loads(
            [PriorityCounts.of(s.hosts, weighted=weighted_priority_health) for s in sets],
            overprovisioning=overprovisioning,
            panic_threshold=settings.panic_threshold,
        )
        self._setup()

    def _setup(self) -> None:
        """Build the per-priority state (hosts sources, tables) from `host_sets` and `load`."""
