"""Envoy's per-worker balancers: ROUND_ROBIN, LEAST_REQUEST and RANDOM.

They share Envoy's `ZoneAwareLoadBalancerBase` path: draw a 64-bit random value, choose the
priority from it (`choose_priority`), then the host source — all hosts of the priority if it is
in panic, else (with locality weighting) one locality picked by EDF, else its healthy or
degraded hosts — and finally a host from that source. RR and least request keep one EDF
scheduler per source when the source's weights differ (EdfLoadBalancerBase::refresh).
"""

from __future__ import annotations

from collections.abc import Sequence

from xdscp.balancer.base import PriorityBalancer
from xdscp.balancer.edf import EdfScheduler
from xdscp.balancer.hosts import Host, HostSet
from xdscp.balancer.policy import Kind
from xdscp.balancer.priority import choose_priority
from xdscp.balancer.slow_start import in_window, slow_start_weight
from xdscp.model import Health


class Source:
    """One Envoy `HostsSource`: a host list, its EDF scheduler (None if unweighted), RR index."""

    __slots__ = ("edf", "hosts", "rr_index")

    def __init__(self, hosts: list[Host], edf: EdfScheduler[Host] | None, rr_index: int) -> None:
        self.hosts = hosts
        self.edf = edf
        self.rr_index = rr_index


def _weights_equal(hosts: Sequence[Host]) -> bool:
    return len({h.weight for h in hosts}) <= 1


class _Priority:
    """The sources of one priority and its locality schedulers."""

    __slots__ = ("all", "degraded", "degraded_localities", "healthy", "healthy_localities",
                 "locality_degraded", "locality_healthy")  # fmt: skip

    def __init__(self) -> None:
        self.all: Source
        self.healthy: Source
        self.degraded: Source
        self.healthy_localities: list[Source] = []
        self.degraded_localities: list[Source] = []
        self.locality_healthy: LocalityScheduler | None = None
        self.locality_degraded: LocalityScheduler | None = None


def effective_locality_weight(
    host_set: HostSet, index: int, eligible: Sequence[Host], overprovisioning: int
) -> float:
    """`lw * min(1, OF/100 * eligible / (hosts - excluded))` (LocalityWrr)."""
    count = len(host_set.hosts_per_locality[index]) - len(host_set.excluded_per_locality[index])
    if count == 0:
        return 0.0
    ratio = 1.0 * len(eligible) / count
    return host_set.locality_weights[index] * min(1.0, (overprovisioning / 100.0) * ratio)


class LocalityScheduler:
    """Envoy's LocalityWrr: EDF over the localities' effective weights."""

    __slots__ = ("edf", "weights")

    def __init__(self, weights: dict[int, float], seed: int) -> None:
        self.weights = weights
        self.edf = EdfScheduler.create_with_picks(list(weights), weights.__getitem__, seed)

    def pick(self) -> int | None:
        """The index of the next locality."""
        return self.edf.pick_and_add(self.weights.__getitem__)


def locality_scheduler(
    host_set: HostSet,
    eligible_per_locality: Sequence[Sequence[Host]],
    eligible: Sequence[Host],
    overprovisioning: int,
    seed: int,
) -> LocalityScheduler | None:
    """Envoy's locality EDF over effective weights, zero weights dropped; None if none left."""
    if not eligible or not host_set.locality_weights:
        return None
    weights = {}
    for i in range(len(host_set.localities)):
        weight = effective_locality_weight(host_set, i, eligible_per_locality[i], overprovisioning)
        if weight > 0:
            weights[i] = weight
    if not weights:
        return None
    return LocalityScheduler(weights, seed)


class ZoneAwareBalancer(PriorityBalancer):
    """Priority, panic and locality selection shared by RR, least request and random."""

    uses_edf = True

    def _setup(self) -> None:
        self.seed = self.rand64()
        self._priorities = [self._build_priority(s) for s in self.host_sets]

    def host_weight(self, host: Host) -> float:
        """The weight the EDF scheduler uses for `host` at pick time (slow start applied)."""
        return self.slow_start(float(host.weight), host)

    def slow_start(self, weight: float, host: Host) -> float:
        """`weight` scaled by the slow-start factor (healthy hosts in their window only)."""
        config = self.settings.slow_start
        if config is None or host.health is not Health.HEALTHY:
            return weight
        return slow_start_weight(weight, host.age, config)

    def _ramping(self, hosts: Sequence[Host]) -> bool:
        config = self.settings.slow_start
        return config is not None and any(
            h.health is Health.HEALTHY and in_window(h.age, config) for h in hosts
        )

    def _source(self, hosts: list[Host]) -> Source:
        edf = None
        if (
            self.uses_edf
            and len(hosts) > 1
            and (self._ramping(hosts) or not self._unweighted(hosts))
        ):
            edf = EdfScheduler.create_with_picks(hosts, self.host_weight, self.seed)
        return Source(hosts, edf, self.seed)

    def _unweighted(self, hosts: Sequence[Host]) -> bool:
        return _weights_equal(hosts)

    def _build_priority(self, host_set: HostSet) -> _Priority:
        state = _Priority()
        state.all = self._source(host_set.hosts)
        state.healthy = self._source(host_set.healthy)
        state.degraded = self._source(host_set.degraded)
        state.healthy_localities = [self._source(g) for g in host_set.healthy_per_locality]
        state.degraded_localities = [self._source(g) for g in host_set.degraded_per_locality]
        if self.settings.locality_weighted:
            of = self.overprovisioning
            state.locality_healthy = locality_scheduler(
                host_set, host_set.healthy_per_locality, host_set.healthy, of, self.rand64()
            )
            state.locality_degraded = locality_scheduler(
                host_set, host_set.degraded_per_locality, host_set.degraded, of, self.rand64()
            )
        return state

    def locality_weights(self, priority: int, *, degraded: bool) -> dict[int, float] | None:
        """The effective weights the locality scheduler of `priority` picks localities by
        (index into the host set's localities); None without locality weighting."""
        state = self._priorities[priority]
        scheduler = state.locality_degraded if degraded else state.locality_healthy
        return None if scheduler is None else dict(scheduler.weights)

    def source_for(self, value: int) -> Source:
        """Envoy's hostSourceToUse for the random value `value`."""
        priority, degraded = choose_priority(value, self.load)
        state = self._priorities[priority]
        if self.load.panic[priority]:
            return state.all
        scheduler = state.locality_degraded if degraded else state.locality_healthy
        if scheduler is not None:
            index = scheduler.pick()
            if index is not None:
                groups = state.degraded_localities if degraded else state.healthy_localities
                return groups[index]
        return state.degraded if degraded else state.healthy

    def choose(self, hash_key: int | None = None) -> Host | None:  # noqa: ARG002 - no hashing
        """Envoy's chooseHostOnce: priority and source from one random value, then a host."""
        source = self.source_for(self.rand64())
        if source.edf is not None:
            return source.edf.pick_and_add(self.host_weight)
        if not source.hosts:
            return None
        return self.unweighted_pick(source)

    def unweighted_pick(self, source: Source) -> Host:
        """Pick from a source whose weights are all equal (or that holds one host)."""
        raise NotImplementedError


class RoundRobinBalancer(ZoneAwareBalancer):
    """ROUND_ROBIN: rotation `hosts[idx++ % n]` from the seed, or EDF when weights differ."""

    def unweighted_pick(self, source: Source) -> Host:
        """Plain rotation, the index starting at the worker's seed."""
        index = source.rr_index
        source.rr_index = index + 1
        return source.hosts[index % len(source.hosts)]


class ClientSideWrrBalancer(RoundRobinBalancer):
    """CLIENT_SIDE_WEIGHTED_ROUND_ROBIN with no load reports: every host weighs the same."""

    def _unweighted(self, hosts: Sequence[Host]) -> bool:  # noqa: ARG002 - always unweighted
        return True


class RandomBalancer(ZoneAwareBalancer):
    """RANDOM: `hosts[r % n]` with the same random value that chose the priority."""

    uses_edf = False

    def choose(self, hash_key: int | None = None) -> Host | None:  # noqa: ARG002 - no hashing
        """Ignores endpoint weights; honours priorities, panic and locality weights."""
        value = self.rand64()
        hosts = self.source_for(value).hosts
        return hosts[value % len(hosts)] if hosts else None

    def unweighted_pick(self, source: Source) -> Host:
        """Not used: `choose` picks directly."""
        return source.hosts[self.rand64() % len(source.hosts)]


class LeastRequestBalancer(ZoneAwareBalancer):
    """LEAST_REQUEST: P2C (N choices) when weights are equal, else EDF over
    `weight / (active + 1) ** bias`. A configured bias forces the EDF path."""

    def _setup(self) -> None:
        bias = self.settings.active_request_bias
        self.bias = 1.0 if bias is None else bias
        self.forced_weighted = bias is not None
        super()._setup()

    def _unweighted(self, hosts: Sequence[Host]) -> bool:
        return not self.forced_weighted and _weights_equal(hosts)

    def host_weight(self, host: Host) -> float:
        """`weight / (active + 1) ** bias` (bias 1.0 divides; bias 0.0 is the plain weight)."""
        if self.bias == 1.0:
            weight = host.weight / (host.active + 1)
        elif self.bias == 0.0:
            weight = float(host.weight)
        else:
            weight = float(host.weight / float(host.active + 1) ** self.bias)
        return self.slow_start(weight, host)

    def unweighted_pick(self, source: Source) -> Host:
        """N choices with replacement; a later sample wins only with strictly fewer active."""
        hosts = source.hosts
        if self.settings.full_scan:
            return self._full_scan(hosts)
        n = len(hosts)
        rand = self._rng.getrandbits
        best = hosts[rand(64) % n]
        for _ in range(self.settings.choice_count - 1):
            sample = hosts[rand(64) % n]
            if sample.active < best.active:
                best = sample
        return best

    def _full_scan(self, hosts: Sequence[Host]) -> Host:
        best = hosts[0]
        tied = 1
        for host in hosts[1:]:
            if host.active < best.active:
                best, tied = host, 1
            elif host.active == best.active:
                tied += 1
                if self.rand64() % tied == 0:
                    best = host
        return best


ENVOY_BALANCERS: dict[Kind, type[ZoneAwareBalancer]] = {
    Kind.ROUND_ROBIN: RoundRobinBalancer,
    Kind.LEAST_REQUEST: LeastRequestBalancer,
    Kind.RANDOM: RandomBalancer,
    Kind.CLIENT_SIDE_WRR: ClientSideWrrBalancer,
}
