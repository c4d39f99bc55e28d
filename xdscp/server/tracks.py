"""What the status board keeps of one type of one stream, as the stream tells it.

A state-of-the-world type is followed from the answers and pushes (`SotwTrack`); a delta
type is what its state last told (`DeltaHolding`, in `DeltaTrack`). Each holds O(1)
references to immutable objects the stream made (snapshots, frozensets, persistent maps,
tuples), never copies, and computes what the client holds, name by name, only when asked
(`client_view`).
"""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import immutables

from xdscp.cache import Snapshot, TypeUrl

__all__ = ["DeltaHolding", "DeltaTrack", "SotwTrack", "Times", "Track"]

_ClientView = Iterator[tuple[str, str | None, str | None, bool]]
# one call's changes to what a delta client holds, by name: (name, the version held before,
# the version held after; None: none, removed); a response's is what it replaced
_Undo = tuple[tuple[str, str | None, str | None], ...]
# a copy of what a delta client holds: (names, their versions)
_Copy = tuple[tuple[str, ...], tuple[str, ...]]


class DeltaHolding(NamedTuple):
    """One delta type as the status board is told of it (`DeltaStreamState.events`): the
    state's own immutable objects, shared, so telling costs O(1) whatever the client holds."""

    type_url: TypeUrl
    names: frozenset[str] | None  # subscribed names; None: wildcard
    held: _Copy  # what the client held (taken as held when sent) before the batches of `log`
    log: tuple[_Undo, ...]  # later changes, oldest first (a response's: what it replaced)
    pending: tuple[tuple[str, _Undo], ...]  # (nonce, what it replaced) of each response
    # awaiting an answer, oldest first
    rejected: immutables.Map[str, str]  # a name held back → the version the client rejected
    sent_version: str
    acked_version: str

    def client_view(self, answered: Container[str] = ()) -> _ClientView:
        """(name, version accepted, newer version sent, True when that one was NACKed), as
        `DeltaTypeState.client_view` gives them; `answered`: the nonces of responses ACKed
        since (an ACK is told by its `Answer` alone)."""
        held: dict[str, str | None] = dict(zip(*self.held, strict=True))
        for batch in self.log:
            for name, _, version in batch:
                if version is None:
                    held.pop(name, None)
                else:
                    held[name] = version
        accepted: dict[str, str | None] = {}
        for nonce, undo in self.pending:  # oldest first: the version before them all
            if nonce not in answered:
                for name, previous, _ in undo:
                    accepted.setdefault(name, previous)
        for name in {*held, *accepted, *self.rejected}:
            version = held.get(name)
            if name in self.rejected:
                yield name, version, self.rejected[name], True
            elif name in accepted:
                yield name, accepted[name], version, False
            elif version is not None:
                yield name, version, None, False


@dataclass(slots=True)
class Times:
    """When a type was last pushed, ACKed and NACKed (0: never)."""

    pushed: float = 0.0
    acked: float = 0.0
    nacked: float = 0.0


def _visible(
    snapshot: Snapshot | None, type_url: TypeUrl, names: frozenset[str] | None
) -> dict[str, str]:
    """name → version of what `snapshot` has of `names` (None: every name)."""
    if snapshot is None:
        return {}
    pool = snapshot.resources[type_url]
    if names is None:
        return {name: resource.version for name, resource in pool.items()}
    return {name: pool[name].version for name in names if name in pool}


@dataclass(slots=True)
class SotwTrack(Times):
    """One state-of-the-world type, from its events: O(1) references, no copy.

    What the client was sent is what `sent_snapshot` has of `sent_names` (a response
    carries the stream's subscribed resources of its snapshot); what it accepted, what
    `acked_snapshot` has of `acked_names`. A subscription that drops names narrows both as
    the protocol does: the client forgets what it was sent of them.
    """

    type_url: TypeUrl = TypeUrl.CLUSTER
    names: frozenset[str] | None = None  # the subscription (the protocol's frozenset)
    sent_snapshot: Snapshot | None = None
    sent_names: frozenset[str] | None = None  # None: every name of the snapshot
    sent_nonce: str = ""
    sent_version: str = ""
    acked_snapshot: Snapshot | None = None
    acked_names: frozenset[str] | None = None
    acked_version: str = ""
    nacked_nonce: str = ""

    def subscribe(self, names: frozenset[str] | None) -> None:
        """The subscription after a request (the same object when it did not change)."""
        if names is self.names:
            return
        self.names = names
        if names is None or self.sent_snapshot is None:
            return  # every name (a response follows), or nothing sent yet
        pool = self.sent_snapshot.resources[self.type_url]
        sent = self.sent_names
        if sent is None:
            gone = [n for n in pool if n not in names]
            self.sent_names = names
        elif sent <= names:
            return  # names added: a response follows
        else:
            gone = [n for n in sent - names if n in pool]
            self.sent_names = sent & names
        self._forget(gone)

    def _forget(self, gone: list[str]) -> None:
        """The client forgets what it accepted of `gone` (names it was sent, dropped)."""
        if not gone or self.acked_snapshot is None:
            return
        pool = self.acked_snapshot.resources[self.type_url]
        acked = self.acked_names
        forgotten = [n for n in gone if n in pool and (acked is None or n in acked)]
        if forgotten:
            held = frozenset(pool) if acked is None else acked
            self.acked_names = held.difference(forgotten)

    def push(self, nonce: str, version: str, snapshot: Snapshot | None, now: float) -> None:
        """A response of the stream's subscription in `snapshot` was sent."""
        self.sent_snapshot, self.sent_names = snapshot, self.names
        self.sent_nonce, self.sent_version, self.pushed = nonce, version, now

    def accept(self, version: str, now: float) -> None:
        """The client ACKed the latest response: it holds what that one carried."""
        self.acked, self.acked_version = now, version
        self.acked_snapshot, self.acked_names = self.sent_snapshot, self.sent_names

    def client_view(self) -> _ClientView:
        """(name, version accepted, newer version sent, True when that one was NACKed)."""
        sent = _visible(self.sent_snapshot, self.type_url, self.sent_names)
        accepted = _visible(self.acked_snapshot, self.type_url, self.acked_names)
        rejected = bool(self.nacked_nonce) and self.nacked_nonce == self.sent_nonce
        for name, version in sent.items():
            held = accepted.get(name)
            if held != version:
                yield name, held, version, rejected
            else:
                yield name, version, None, False
        for name, held in accepted.items():
            if name not in sent:  # its removal not yet ACKed
                yield name, held, None, False


@dataclass(slots=True)
class DeltaTrack(Times):
    """One delta type, from its events: the latest `DeltaHolding` the stream told, and the
    ACKs told since by their `Answer`s alone (the responses they name no longer await an
    answer; the version accepted)."""

    holding: DeltaHolding | None = None
    acked_version: str = ""  # the version the client accepted (the holding's, or an ACK's)
    answered: tuple[str, ...] = ()  # nonces of the responses ACKed since the holding

    @property
    def names(self) -> frozenset[str] | None:
        """Subscribed names; None for a wildcard."""
        return None if self.holding is None else self.holding.names

    @property
    def sent_version(self) -> str:
        """The version of what the client holds with the latest response."""
        return "" if self.holding is None else self.holding.sent_version

    def client_view(self) -> _ClientView:
        """(name, version accepted, newer version sent, True when that one was NACKed)."""
        return iter(()) if self.holding is None else self.holding.client_view(self.answered)


Track = SotwTrack | DeltaTrack
