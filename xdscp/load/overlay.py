"""The services as served with computed weights: every adaptive service's loop, sans I/O.

`WeightOverlay` sits after the health overlay: `update(base, names)` follows the services as
served (merged, health applied), giving each service whose policy has `adaptive_weights` an
`AdaptiveWeights` loop (its registered weights: the endpoints' own); `apply(samples, now,
wall)` feeds each loop its samples and asks it to decide, and returns the services whose
served weights changed. `services` is what the translators read: the base set, with only the
adaptive services replaced by copies whose endpoint weights are the loop's, as whole numbers
(the heaviest `RESOLUTION`), so the same loop state gives the same bytes and versions.
`impose(service, weights)` serves weights decided elsewhere instead (replicas serving one
publisher's decision: `xdscp.plane.shared_weights`); `decided()` is what each loop decided.

Samples come from two places, per endpoint: what clients reported (`samples`, per service:
an LRS `LoadBook`'s, through the plane's `LoadSamples` seam), else what the endpoint
registered itself (`Endpoint.load`, stamped with wall-clock time: its age decides whether it
is stale). A registration without `rps` is weighed by the share it gets now (its current
weight): under weighted balancing its rate follows its weight, so `weight / utilization`
converges to its capacity like `rps / utilization` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from xdscp.load.adaptive import AdaptiveWeights, WeightPush, whole_weights
from xdscp.load.samples import LoadSample
from xdscp.model import AdaptiveSettings, ReportedLoad, Service, ServiceSet

Samples = Mapping[str, Sequence[LoadSample]]
"""Per service name, one sample per endpoint (key `ip:port`)."""


class LoadSamples(Protocol):
    """What the plane is handed to read the clients' load: per service (an Envoy or gRPC
    cluster is named after its service), one sample per endpoint, at `now` (monotonic
    seconds). `LoadBook.samples` is one."""

    def __call__(self, now: float, /) -> Samples:
        """The samples fresh at `now`."""
        ...


class _Served(Mapping[str, Service]):
    """The base services, with the reweighed ones in their place (no copy of the set)."""

    __slots__ = ("_base", "_overrides")

    def __init__(self, base: ServiceSet, overrides: Mapping[str, Service]) -> None:
        self._base, self._overrides = base, overrides

    def __getitem__(self, name: str) -> Service:
        found = self._overrides.get(name)
        return found if found is not None else self._base[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)

    def __contains__(self, name: object) -> bool:
        return name in self._base


class _Loop:
    """One adaptive service: its settings, its loop, and the weights served now."""

    __slots__ = ("served", "settings", "weights")

    def __init__(self, settings: AdaptiveSettings, registered: Mapping[str, int]) -> None:
        self.settings = settings
        self.weights = AdaptiveWeights(settings, registered)
        self.served: dict[str, int] = whole_weights(self.weights.current)


class WeightOverlay:
    """The served services with the adaptive services' computed weights."""

    def __init__(self) -> None:
        self._base: ServiceSet = {}
        self._loops: dict[str, _Loop] = {}
        self._overrides: dict[str, Service] = {}
        self.services: ServiceSet = _Served(self._base, self._overrides)
        self.last_push: dict[str, WeightPush] = {}  # per service, the last push that changed
        self._imposed: dict[str, dict[str, int]] = {}  # served instead of the loop's own

    @property
    def adaptive(self) -> frozenset[str]:
        """The services whose weights xdscp computes."""
        return frozenset(self._loops)

    def weights(self, service: str) -> Mapping[str, int] | None:
        """The weights served for `service` (None: not adaptive)."""
        loop = self._loops.get(service)
        return None if loop is None else dict(loop.served)

    def decided(self) -> dict[str, dict[str, int]]:
        """Per adaptive service, the weights its own loop decided (served unless imposed)."""
        return {name: whole_weights(loop.weights.current) for name, loop in self._loops.items()}

    def imposed(self, service: str) -> bool:
        """Whether `service` is served weights decided elsewhere."""
        return service in self._imposed

    def impose(self, service: str, weights: Mapping[str, int] | None) -> bool:
        """Serve `weights` for `service` instead of its loop's (None: its loop's again), for
        the endpoints it has (the others: the loop's); True when what is served changed."""
        if weights is None:
            self._imposed.pop(service, None)
        else:
            self._imposed[service] = dict(weights)
        loop = self._loops.get(service)
        return loop is not None and self._serve(service, loop)

    def _serve(self, name: str, loop: _Loop) -> bool:
        """Bring `name`'s served weights up to date; True when they changed."""
        own = whole_weights(loop.weights.current)
        imposed = self._imposed.get(name)
        served = own if imposed is None else {k: imposed.get(k, w) for k, w in own.items()}
        if served == loop.served and name in self._overrides:
            return False
        loop.served = served
        self._overrides[name] = _reweighed(self._base[name], served)
        return True

    def update(self, base: ServiceSet, names: Iterable[str] | None) -> None:
        """Follow `base` (the services as served before weighing) for `names` (None: all)."""
        if base is not self._base:
            self._base = base
            self.services = _Served(base, self._overrides)
        for name in set(base) | set(self._loops) if names is None else set(names):
            self._follow(name)

    def _follow(self, name: str) -> None:
        service = self._base.get(name)
        settings = None if service is None else service.policy.adaptive_weights
        if service is None or settings is None:
            self._loops.pop(name, None)
            self._overrides.pop(name, None)
            self.last_push.pop(name, None)
            return  # an imposed record stays: it serves again if the service comes back
        registered = {e.key: e.weight for e in service.endpoints}
        loop = self._loops.get(name)
        if loop is None or loop.settings != settings:
            loop = self._loops[name] = _Loop(settings, registered)
        else:
            loop.weights.set_registered(registered)
        self._overrides.pop(name, None)  # the service itself changed: served anew
        self._serve(name, loop)

    def apply(self, samples: Samples, now: float, wall: float) -> frozenset[str]:
        """Feed every adaptive service its samples at `now` (monotonic seconds; `wall`: the
        epoch seconds registrations are stamped in); the services whose weights changed."""
        changed: set[str] = set()
        for name, loop in self._loops.items():
            service = self._base[name]
            for sample in _samples_of(service, samples.get(name, ()), loop, now, wall):
                loop.weights.observe(sample)
            push = loop.weights.decide(now)
            if push is not None and self._serve(name, loop):
                self.last_push[name] = push
                changed.add(name)
        return frozenset(changed)


def _samples_of(
    service: Service, reported: Sequence[LoadSample], loop: _Loop, now: float, wall: float
) -> list[LoadSample]:
    """The clients' samples, then a registered load for each endpoint they did not cover."""
    out = list(reported)
    covered = {s.endpoint for s in reported}
    current = loop.weights.current
    for endpoint in service.endpoints:
        if endpoint.load is None or endpoint.key in covered:
            continue
        weight = current.get(endpoint.key, 1.0)
        out.append(_registered_sample(endpoint.key, endpoint.load, weight, now, wall))
    return out


def _registered_sample(
    key: str, load: ReportedLoad, weight: float, now: float, wall: float
) -> LoadSample:
    """An endpoint's own load as a sample, seen `wall - at` seconds before `now` (a load older
    than `now` is refused as implausible, as stale); without `rps`, its current weight
    stands for its rate."""
    age = max(0.0, wall - load.at)
    rps = load.rps if load.rps is not None else weight
    return LoadSample(key, now - age, rps, load.utilization)


def _reweighed(service: Service, weights: Mapping[str, int]) -> Service:
    """`service` with its endpoints weighing `weights` (by `ip:port`)."""
    endpoints = tuple(
        e if weights.get(e.key, e.weight) == e.weight else replace(e, weight=weights[e.key])
        for e in service.endpoints
    )
    return replace(service, endpoints=endpoints)
