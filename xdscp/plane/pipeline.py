"""The plane's pipeline: events in, the next snapshot per client kind out. I/O-free.

Events in:

- `publish(position, services)`: source number `position` (0-based, configuration order)
  published its complete set;
- `apply_verdicts(verdicts)`: xdscp's own health checks judged endpoints (None: forgotten);
- `apply_loads(samples, now, wall)`: a tick of the adaptive weights (`WeightOverlay`): the
  clients' samples per service, the time; a service whose served weights changed is owed.

Work out, when the runtime asks:

- `merge()`: merge every publication since the last merge (`SourceMerge`: the first source
  keeps a name, names clients cannot tell apart are refused) and follow it with the health
  overlay; the names that changed and the new clashes to report;
- `build(kind)`: `kind`'s next snapshot (`Built`), translating only the names that changed
  since `kind` last built (None: it is up to date). Names accumulate per kind, so a kind
  built later than another is told every change it missed.

The pipeline owns the merge, the health overlay (failing endpoints served UNHEALTHY), the
weight overlay after it (adaptive services' computed weights), one translator per client kind
and the names each kind has yet to translate. Nothing here waits, schedules or touches a
socket: `ControlPlane` decides when to merge, build and tick the weights (a burst of
publications costs one merge; Envoy's snapshot is built first) and hands the snapshots to the
cache.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from xdscp.health import HealthOverlay, TargetKey, Verdict
from xdscp.load import Samples, WeightOverlay
from xdscp.model import ClientKind, Service, ServiceSet
from xdscp.plane.merge import MergeResult, SourceMerge
from xdscp.translate import ClientTranslator, TranslationResult

# Built in the merge's own loop turn; every other kind a turn later (see `ControlPlane`).
FIRST = ClientKind.ENVOY


@dataclass(frozen=True, slots=True)
class Built:
    """One client kind's next snapshot, and how many names it re-translated (None: all)."""

    kind: ClientKind
    result: TranslationResult
    changed: int | None


class Pipeline:
    """Sources' sets and health verdicts in; per client kind, the next snapshot out."""

    def __init__(
        self,
        source_names: Sequence[str],
        translators: Mapping[ClientKind, ClientTranslator],
        *,
        domain_suffixes: tuple[str, ...] = (),
    ) -> None:
        self._merge = SourceMerge(source_names, domain_suffixes)
        self.overlay = HealthOverlay()
        self.weights = WeightOverlay()
        self.translators = dict(translators)
        # names each client kind has yet to translate; None: everything
        self._pending: dict[ClientKind, set[str] | None] = dict.fromkeys(self.translators)
        kinds = tuple(self.translators)
        self.turns = tuple(
            turn
            for turn in (
                tuple(k for k in kinds if k is FIRST),
                tuple(k for k in kinds if k is not FIRST),
            )
            if turn
        )

    @property
    def merged(self) -> Mapping[str, Service]:
        """Every source's services, without clashing names (as merged, before health)."""
        return self._merge.merged

    @property
    def services(self) -> ServiceSet:
        """The services as served: merged, failing endpoints UNHEALTHY, adaptive services'
        weights computed."""
        return self.weights.services

    def source_of(self, name: str) -> str | None:
        """The name of the source whose `name` is served (None: not served)."""
        return self._merge.source_of(name)

    def publish(self, position: int, services: ServiceSet) -> None:
        """Source number `position` (0-based) published `services`; merged at `merge()`."""
        self._merge.publish(position, services)

    @property
    def unmerged(self) -> bool:
        """True when a publication waits for `merge()`."""
        return self._merge.pending

    def merge(self) -> MergeResult:
        """Merge every publication since the last merge; every kind owes the changes."""
        result = self._merge.merge()
        self.overlay.update(self._merge.merged, result.changed)
        self.weights.update(self.overlay.services, result.changed)
        self._owe(result.changed)
        return result

    def apply_verdicts(
        self, verdicts: Iterable[tuple[TargetKey, Verdict | None]]
    ) -> frozenset[str]:
        """Record verdicts; every kind owes the services now served differently (returned)."""
        changed: set[str] = set()
        for (service, endpoint), verdict in verdicts:
            if self.overlay.set_verdict(service, endpoint, verdict):
                changed.add(service)
        self.weights.update(self.overlay.services, changed)
        self._owe(frozenset(changed))
        return frozenset(changed)

    def apply_loads(self, samples: Samples, now: float, wall: float) -> frozenset[str]:
        """One tick of the adaptive weights at `now` (monotonic seconds; `wall`: epoch
        seconds, for registered loads' age); every kind owes the services reweighed
        (returned). A decision that leaves the served weights as they were owes nothing."""
        changed = self.weights.apply(samples, now, wall)
        self._owe(changed)
        return changed

    def impose_weights(self, service: str, weights: Mapping[str, int] | None) -> frozenset[str]:
        """Serve `weights` (decided by another replica; None: this replica's own again) for
        the adaptive `service`; every kind owes it when what is served changed (returned)."""
        changed = frozenset({service}) if self.weights.impose(service, weights) else frozenset()
        self._owe(changed)
        return changed

    def build(self, kind: ClientKind) -> Built | None:
        """`kind`'s next snapshot, from the services as served now; None: it is up to date."""
        pending = self._pending[kind]
        if pending is not None and not pending:
            return None
        self._pending[kind] = set()
        names = None if pending is None else frozenset(pending)
        result = self.translators[kind].translate(self.weights.services, names)
        return Built(kind, result, None if names is None else len(names))

    def notes(self, kind: ClientKind) -> Mapping[str, tuple[str, ...]]:
        """Per service, how `kind`'s clients behave differently from its policy."""
        return self.translators[kind].notes

    def _owe(self, names: frozenset[str] | None) -> None:
        for kind, pending in self._pending.items():
            if names is None:
                self._pending[kind] = None
            elif pending is not None:
                pending.update(names)
