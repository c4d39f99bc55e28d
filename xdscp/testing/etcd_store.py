"""The I/O-free state machine of the fake etcd: an MVCC key space, leases and watchers.

It follows etcd v3's rules where xdscp depends on them:

- one global revision, 1 on a fresh store; each write request (a put, a delete that deletes
  something, a transaction with writes, a lease revoked or expired with keys) adds exactly
  one, shared by all its writes; `create_revision`, `mod_revision` and `version` per key;
- reads at a past revision (`range(revision=...)`); a revision below the compacted one is
  `compacted`, above the current one `future_revision` (etcd's gRPC errors, same messages);
- compaction keeps, per key, the newest version at or below the compacted revision (dropped
  when it is a deletion), as etcd's key index does;
- watchers see every event from their start revision on, in revision order and within a
  revision in write order; one starting below the compacted revision is refused;
- leases with a TTL measured on the `now` the caller passes (no clock here): keep-alive
  restarts the TTL, revoke or expiry deletes the attached keys in one revision.

Nothing here does I/O or reads a clock; `xdscp.testing.etcd_server` serves it over gRPC.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum


class StoreErrorKind(Enum):
    """The etcd errors the fake reproduces: (gRPC status code name, etcd's message)."""

    COMPACTED = ("OUT_OF_RANGE", "etcdserver: mvcc: required revision has been compacted")
    FUTURE_REVISION = ("OUT_OF_RANGE", "etcdserver: mvcc: required revision is a future revision")
    LEASE_NOT_FOUND = ("NOT_FOUND", "etcdserver: requested lease not found")
    LEASE_EXISTS = ("FAILED_PRECONDITION", "etcdserver: lease already exists")
    EMPTY_KEY = ("INVALID_ARGUMENT", "etcdserver: key is not provided")
    DUPLICATE_KEY = ("INVALID_ARGUMENT", "etcdserver: duplicate key given in txn request")
    UNSUPPORTED = ("UNIMPLEMENTED", "the fake etcd does not implement this request")


class StoreError(Exception):
    """A request etcd would refuse; `kind` names the gRPC status and message to answer."""

    def __init__(self, kind: StoreErrorKind) -> None:
        super().__init__(kind.value[1])
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Kv:
    """One key's version, as etcd's `mvccpb.KeyValue`."""

    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    """A change, as etcd's `mvccpb.Event`: for a DELETE, `kv` holds only the key and the
    deletion's revision in `mod_revision`."""

    deleted: bool
    kv: Kv


@dataclass(frozen=True, slots=True)
class _Version:
    main: int
    sub: int
    event: Event


def in_range(key: bytes, start: bytes, end: bytes) -> bool:
    """etcd's key range: `end` empty is the single key `start`; `b"\\0"` is every key from
    `start` on; otherwise the half-open interval [start, end)."""
    if not end:
        return key == start
    if end == b"\0":
        return key >= start
    return start <= key < end


@dataclass
class Lease:
    """A granted lease: its TTL (seconds), its deadline on the caller's clock, its keys."""

    id: int
    ttl: int
    deadline: float
    keys: set[bytes] = field(default_factory=set)

    def remaining(self, now: float) -> int:
        """Whole seconds left (etcd truncates), never negative."""
        return max(0, math.floor(self.deadline - now))


@dataclass
class Watcher:
    """One watch: its range and the events not yet taken (`take`)."""

    id: int
    key: bytes
    end: bytes
    pending: list[Event] = field(default_factory=list)

    def take(self) -> list[Event]:
        """The pending events, oldest first; the buffer is emptied."""
        events, self.pending = self.pending, []
        return events


@dataclass
class Store:
    """The fake etcd's whole state. Timed calls take `now`, seconds on any monotonic clock."""

    min_lease_ttl: int = 1
    revision: int = 1
    compact_revision: int = 0
    leases: dict[int, Lease] = field(default_factory=dict)
    watchers: dict[int, Watcher] = field(default_factory=dict)
    _versions: dict[bytes, list[_Version]] = field(default_factory=dict)
    _sub: int = 0  # writes so far in the request being applied (0: none)
    _next_id: int = 0x694D_7A3B_0000_0001  # lease and watcher ids

    # -- reads -----------------------------------------------------------------------------

    def check_revision(self, revision: int) -> None:
        """Refuse to read at a compacted or future revision (0 is "now")."""
        if revision and revision < self.compact_revision:
            raise StoreError(StoreErrorKind.COMPACTED)
        if revision > self.revision:
            raise StoreError(StoreErrorKind.FUTURE_REVISION)

    def range(self, key: bytes, end: bytes = b"", revision: int = 0) -> list[Kv]:
        """The live keys in the range at `revision` (0: now, including the writes of the
        request being applied), in key order."""
        self.check_revision(revision)
        out: list[Kv] = []
        for name in sorted(k for k in self._versions if in_range(k, key, end)):
            kv = self._at(name, revision)
            if kv is not None:
                out.append(kv)
        return out

    def _at(self, key: bytes, revision: int) -> Kv | None:
        versions = self._versions[key]
        index = len(versions)
        if revision:
            index = bisect.bisect_right([v.main for v in versions], revision)
        if index == 0 or versions[index - 1].event.deleted:
            return None
        return versions[index - 1].event.kv

    # -- writes ----------------------------------------------------------------------------

    @property
    def _main(self) -> int:
        """The revision the writes of the request being applied get."""
        return self.revision + 1

    def put(self, key: bytes, value: bytes, lease: int = 0) -> Kv:
        """Write `key` (attached to `lease` when non-zero) within the current request."""
        if not key:
            raise StoreError(StoreErrorKind.EMPTY_KEY)
        if lease and lease not in self.leases:
            raise StoreError(StoreErrorKind.LEASE_NOT_FOUND)
        old = self._at(key, 0) if key in self._versions else None
        if old is not None and old.lease and old.lease in self.leases:
            self.leases[old.lease].keys.discard(key)
        if lease:
            self.leases[lease].keys.add(key)
        created = old.create_revision if old is not None else self._main
        version = old.version + 1 if old is not None else 1
        kv = Kv(key, value, created, self._main, version, lease)
        self._record(Event(deleted=False, kv=kv))
        return kv

    def delete_range(self, key: bytes, end: bytes = b"") -> list[Kv]:
        """Delete the live keys in the range within the current request; returns them."""
        if not key:
            raise StoreError(StoreErrorKind.EMPTY_KEY)
        gone = self.range(key, end)
        for kv in gone:
            if kv.lease in self.leases:
                self.leases[kv.lease].keys.discard(kv.key)
            self._record(Event(deleted=True, kv=Kv(kv.key, b"", 0, self._main, 0)))
        return gone

    def _record(self, event: Event) -> None:
        self._versions.setdefault(event.kv.key, []).append(_Version(self._main, self._sub, event))
        self._sub += 1
        for watcher in self.watchers.values():
            if in_range(event.kv.key, watcher.key, watcher.end):
                watcher.pending.append(event)

    def commit(self) -> int:
        """End the current request: the revision moves on when it wrote. Returns the
        revision now (the response header's)."""
        if self._sub:
            self.revision += 1
        self._sub = 0
        return self.revision

    def compact(self, revision: int) -> None:
        """Forget the history below `revision` (etcd's key-index compaction)."""
        if revision <= self.compact_revision:
            raise StoreError(StoreErrorKind.COMPACTED)
        if revision > self.revision:
            raise StoreError(StoreErrorKind.FUTURE_REVISION)
        self.compact_revision = revision
        for key in list(self._versions):
            versions = self._versions[key]
            keep = bisect.bisect_right([v.main for v in versions], revision) - 1
            if keep >= 0 and versions[keep].event.deleted:
                keep += 1
            del versions[: max(0, keep)]
            if not versions:
                del self._versions[key]

    # -- watches ---------------------------------------------------------------------------

    def watch(self, key: bytes, end: bytes = b"", start_revision: int = 0) -> Watcher:
        """Start a watch; its `pending` holds the history from `start_revision` (0: only
        what comes next). `COMPACTED` when that history is gone."""
        if start_revision and start_revision < self.compact_revision:
            raise StoreError(StoreErrorKind.COMPACTED)
        watcher = Watcher(self._new_id(), key, end)
        if start_revision:
            watcher.pending = [v.event for v in self._history(key, end, start_revision)]
        self.watchers[watcher.id] = watcher
        return watcher

    def _history(self, key: bytes, end: bytes, start: int) -> Iterator[_Version]:
        found = [
            version
            for name, versions in self._versions.items()
            if in_range(name, key, end)
            for version in versions
            if version.main >= start
        ]
        return iter(sorted(found, key=lambda v: (v.main, v.sub)))

    def cancel_watch(self, watch_id: int) -> bool:
        """Stop a watch; False when there was none."""
        return self.watchers.pop(watch_id, None) is not None

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    # -- leases ----------------------------------------------------------------------------

    def grant(self, ttl: int, now: float, lease_id: int = 0) -> Lease:
        """A new lease of `ttl` seconds (at least `min_lease_ttl`, as etcd raises it)."""
        if lease_id in self.leases:
            raise StoreError(StoreErrorKind.LEASE_EXISTS)
        ttl = max(ttl, self.min_lease_ttl)
        lease = Lease(lease_id or self._new_id(), ttl, now + ttl)
        self.leases[lease.id] = lease
        return lease

    def keep_alive(self, lease_id: int, now: float) -> int:
        """Restart a lease's TTL; returns it, 0 when the lease does not exist (as etcd)."""
        lease = self.leases.get(lease_id)
        if lease is None or lease.deadline <= now:
            return 0
        lease.deadline = now + lease.ttl
        return lease.ttl

    def revoke(self, lease_id: int) -> int:
        """Delete a lease and its keys (one revision when it had keys); returns the
        revision after it."""
        lease = self.leases.pop(lease_id, None)
        if lease is None:
            raise StoreError(StoreErrorKind.LEASE_NOT_FOUND)
        for key in sorted(lease.keys):
            self.delete_range(key)
        return self.commit()

    def expire(self, now: float) -> list[int]:
        """Revoke every lease whose deadline has passed; returns their ids."""
        gone = sorted(lid for lid, lease in self.leases.items() if lease.deadline <= now)
        for lease_id in gone:
            self.revoke(lease_id)
        return gone

    def next_deadline(self) -> float | None:
        """When the next lease expires (None: no lease)."""
        return min((lease.deadline for lease in self.leases.values()), default=None)

    def time_to_live(self, lease_id: int, now: float) -> tuple[int, int, list[bytes]]:
        """(remaining seconds, granted TTL, keys) of a lease; remaining is -1 when it does
        not exist (expired or revoked), as etcd answers LeaseTimeToLive."""
        lease = self.leases.get(lease_id)
        if lease is None or lease.deadline <= now:
            return -1, 0, []
        return lease.remaining(now), lease.ttl, sorted(lease.keys)
