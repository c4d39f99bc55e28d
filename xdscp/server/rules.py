"""The rules both stream states follow (state of the world and delta), in one place.

`StreamState` (`protocol.py`) and `DeltaStreamState` (`delta.py`) differ in what they send;
they agree on what a request means (`Kind`), which type it names (`served_type`), which
types have a wildcard (`xdscp.cache.WILDCARD_TYPES`), when a new snapshot's change list says it all
(`derived_from`), and in which order a push visits the types, EDS after every CDS push
(`push_order`). Handling a request gives one `Outcome` in both: its responses and its `Kind`.
Both are a `StreamShell` (the allowed types, the snapshot, the per-type records, the nonce
counter) over their own per-type record, a `TypeRecord` (subscribed, the latest response's
nonce and version, the versions accepted and rejected, the last NACK's error).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from xdscp.cache import TYPE_ORDER, Resource, Snapshot, TypeUrl
from xdscp.errors import InvalidRequestError

WILDCARD = "*"


class Kind(StrEnum):
    """What a request meant to the protocol (for metrics, logs and observers)."""

    INITIAL = "initial"  # no nonce: the client holds no response of this type yet
    ACK = "ack"
    RESUBSCRIBE = "resubscribe"  # an ACK that also added names
    NACK = "nack"
    DUPLICATE_NACK = "duplicate_nack"  # the same response NACKed again
    STALE = "stale"  # answers an older response (or one never sent): not an ACK
    UNKNOWN_TYPE = "unknown_type"  # a type this stream does not serve
    NONE = "none"


R_co = TypeVar("R_co", covariant=True)


@dataclass(frozen=True, slots=True)
class Outcome(Generic[R_co]):
    """What handling one request produced, in either variant: the responses to send (of the
    variant's response type `R_co`), and what the request meant."""

    responses: tuple[R_co, ...] = ()
    kind: Kind = Kind.NONE
    error: str = ""  # a NACK's error message
    type_url: str = ""  # the type the request was taken for


def contents_key(resources: Iterable[Resource]) -> tuple[tuple[str, str], ...]:
    """A response's resources by name and content version: equal keys, equal bytes."""
    return tuple((r.name, r.version) for r in resources)


def served_type(type_url: str, allowed: frozenset[TypeUrl]) -> TypeUrl | None:
    """The known type a request names, if this stream serves it.

    The type URL is implicit on a single-type service (CDS, EDS, ...): an empty one means
    that service's type. On ADS it is required: without one the request is invalid.
    """
    if not type_url:
        if len(allowed) == 1:
            return next(iter(allowed))
        raise InvalidRequestError("xdscp: a request on ADS must name its type_url")
    try:
        known = TypeUrl(type_url)
    except ValueError:
        return None
    return known if known in allowed else None


def derived_from(snapshot: Snapshot, held: Snapshot | None) -> bool:
    """True when `snapshot` was derived from `held` (its change list then says it all)."""
    parent = snapshot.parent_versions
    return (
        held is not None
        and snapshot.changes is not None
        and parent is not None
        and (parent is held.versions or parent == held.versions)
    )


def push_order(type_urls: Iterable[TypeUrl]) -> list[TypeUrl]:
    """The types a push visits, in the order a client must receive them (`TYPE_ORDER`).

    EDS is always among them, after CDS: every CDS push is followed by the stream's
    ClusterLoadAssignments, even unchanged ones, so a changed cluster does not wait out
    `initial_fetch_timeout` while warming (`eds_after_cds` says when it is due).
    """
    return sorted({*type_urls, TypeUrl.ENDPOINT}, key=TYPE_ORDER.__getitem__)


def eds_after_cds(type_url: TypeUrl, *, cds_sent: bool) -> bool:
    """True when `type_url` is EDS and this push has sent CDS: EDS must follow."""
    return cds_sent and type_url is TypeUrl.ENDPOINT


@dataclass(slots=True)
class TypeRecord:
    """What both variants record of one type on one stream (status and metrics read it)."""

    subscribed: bool = False
    sent_nonce: str = ""
    sent_version: str = ""
    acked_version: str = ""
    nacked_version: str = ""
    last_error: str = ""

    def note_nack(self, error: str | None) -> str:
        """The client rejected the latest response: record its version and the error."""
        self.nacked_version, self.last_error = self.sent_version, error or ""
        return self.last_error


class TypedRequest(Protocol):
    """A plain request of either variant: what the shell reads of it."""

    @property
    def type_url(self) -> str:
        """The type it names (empty: the single type of a per-type service)."""
        ...


T = TypeVar("T", bound=TypeRecord)
Q = TypeVar("Q", bound=TypedRequest)
R = TypeVar("R")


@dataclass
class StreamShell(ABC, Generic[T, Q, R]):
    """What both stream states hold: the types served (`allowed`: a single-type service
    limits them), the snapshot served from, one record `T` per type, the nonce counter; and
    how a request `Q` is taken: its type, then the variant's `_unserved` or `_handle`."""

    allowed: frozenset[TypeUrl] = frozenset(TypeUrl)
    snapshot: Snapshot | None = None
    types: dict[TypeUrl, T] = field(default_factory=dict)
    _nonce: int = 0

    @abstractmethod
    def _new_record(self) -> T:
        """A fresh per-type record of the variant."""
        raise NotImplementedError

    def state(self, type_url: TypeUrl) -> T:
        """The per-type state (created on first use)."""
        record = self.types.get(type_url)
        if record is None:
            record = self.types[type_url] = self._new_record()
        return record

    def _next_nonce(self) -> str:
        self._nonce += 1
        return str(self._nonce)

    def on_request(self, request: Q) -> Outcome[R]:
        """Handle one request; return the responses it calls for."""
        type_url = served_type(request.type_url, self.allowed)
        if type_url is None:
            return self._unserved(request)
        return self._handle(self.state(type_url), type_url, request)

    @abstractmethod
    def _unserved(self, request: Q) -> Outcome[R]:
        """A request for a type this stream does not serve."""
        raise NotImplementedError

    @abstractmethod
    def _handle(self, ts: T, type_url: TypeUrl, request: Q) -> Outcome[R]:
        """A request for a served type, with its record."""
        raise NotImplementedError


def nack_error(message: Any) -> str | None:
    """A wire request's `error_detail` message: None unless the request is a NACK."""
    return message.error_detail.message if message.HasField("error_detail") else None
