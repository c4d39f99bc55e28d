"""When the plane merges and translates, as data: I/O-free, driven by events.

`RebuildSchedule` is the sans-I/O core of the plane's rebuilds; `ControlPlane` is its shell
(it owns the event loop, the translators and the cache):

- `publish(index, services)`: a source published; True when a rebuild must be scheduled
  (the first publication since the last rebuild: a burst of them costs one rebuild);
- `rebuild()`: merge what was published (`SourceMerge`) and return a `RebuildPlan`: the
  names that changed, the new clashes to report, and the client kinds to translate, turn
  by turn of the event loop — Envoy's first, the others one turn later, once the woken
  Envoy streams have written their responses (measured: a change reaches Envoy without
  waiting for the gRPC translation);
- `invalidate(names)`: the names are served differently without a publication (xdscp's own
  health verdicts changed): the same plan, for just those names;
- `take(kind)`: what `kind` has to translate now (`TranslateStep`), None when its snapshot
  is up to date. Names changed by rebuilds `kind` has not translated yet accumulate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xdscp.model import ClientKind, Service, ServiceSet
from xdscp.sources import Clash, SourceMerge

# Translated in the rebuild's own turn; every other kind a turn later.
FIRST = ClientKind.ENVOY


@dataclass(frozen=True, slots=True)
class RebuildPlan:
    """What one rebuild changed, and the client kinds to translate in each loop turn."""

    changed: frozenset[str] | None  # None: possibly everything
    clashes: tuple[Clash, ...]  # new clashes, to report once
    turns: tuple[tuple[ClientKind, ...], ...]  # turns[0] now, turns[n] n loop turns later


@dataclass(frozen=True, slots=True)
class TranslateStep:
    """One client kind's translation: of the names that changed (None: every service)."""

    kind: ClientKind
    names: frozenset[str] | None


class RebuildSchedule:
    """The merge of the sources and the order of the translations it calls for."""

    def __init__(self, merge: SourceMerge, kinds: Sequence[ClientKind] = tuple(ClientKind)) -> None:
        self._merge = merge
        first = tuple(kind for kind in kinds if kind is FIRST)
        later = tuple(kind for kind in kinds if kind is not FIRST)
        self._turns = tuple(turn for turn in (first, later) if turn)
        # names each client kind has yet to translate; None: everything
        self._pending: dict[ClientKind, set[str] | None] = dict.fromkeys(kinds)
        self._scheduled = False

    @property
    def merged(self) -> Mapping[str, Service]:
        """The services being translated: every source's, without clashing names."""
        return self._merge.merged

    def publish(self, index: int, services: ServiceSet) -> bool:
        """Source `index` (0-based) published `services`; True: schedule one `rebuild()`."""
        self._merge.publish(index, services)
        first, self._scheduled = not self._scheduled, True
        return first

    def rebuild(self) -> RebuildPlan:
        """Merge every publication since the last rebuild; what to translate, in order."""
        self._scheduled = False
        result = self._merge.merge()
        changed = result.changed
        for kind, pending in self._pending.items():
            self._pending[kind] = None if changed is None or pending is None else pending | changed
        return RebuildPlan(changed, result.clashes, self._turns)

    def invalidate(self, names: frozenset[str]) -> RebuildPlan:
        """`names` are served differently without a publication (a health verdict changed):
        every kind translates them, in the usual turns."""
        for pending in self._pending.values():
            if pending is not None:
                pending.update(names)
        return RebuildPlan(names, (), self._turns)

    def take(self, kind: ClientKind) -> TranslateStep | None:
        """What `kind` must translate now (and is then up to date with); None: nothing."""
        pending = self._pending[kind]
        if pending is not None and not pending:
            return None
        self._pending[kind] = set()
        return TranslateStep(kind, None if pending is None else frozenset(pending))
