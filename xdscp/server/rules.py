"""The rules both stream states follow (state of the world and delta), in one place.

`StreamState` (`protocol.py`) and `DeltaStreamState` (`delta.py`) differ in what they send;
they agree on what a request means (`RequestKind`), which type it names (`served_type`),
which types have a wildcard (`xdscp.cache.WILDCARD_TYPES`), when a new snapshot's change
list says it all (`derived_from`), and in which order a push visits the types, EDS after
every CDS push (`push_order`). Handling a request gives one `Handled` in both: the responses
to send (each a push: its type, nonce and version) and the request's `Answer` event (what it
meant, the nonce it answers, the version it accepted or rejected, a NACK's error), which is
all the grpc.aio shell, the metrics and the status board are told. Both are a `StreamCore`
(the allowed types, the snapshot, the per-type records, the nonce counter) over their own
per-type record, a `TypeRecord` (subscribed, the latest response's nonce and version, the
versions accepted and rejected, the last NACK's error).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, NamedTuple, TypeVar

from xdscp.cache import TYPE_ORDER, Snapshot, TypeUrl
from xdscp.errors import InvalidRequestError

WILDCARD = "*"


class RequestKind(StrEnum):
    """What a request meant to the protocol (for metrics, logs and observers)."""

    INITIAL = "initial"  # no nonce: the client holds no response of this type yet
    ACK = "ack"
    RESUBSCRIBE = "resubscribe"  # an ACK that also added names
    NACK = "nack"
    DUPLICATE_NACK = "duplicate_nack"  # the same response NACKed again
    STALE = "stale"  # answers an older response (or one never sent): not an ACK
    UNKNOWN_TYPE = "unknown_type"  # a type this stream does not serve
    NONE = "none"


ACCEPTED = frozenset({RequestKind.ACK, RequestKind.RESUBSCRIBE})  # an answer that ACKs
REJECTED = frozenset({RequestKind.NACK, RequestKind.DUPLICATE_NACK})  # one that NACKs
_EDS, _ORDER = TypeUrl.ENDPOINT, TYPE_ORDER.__getitem__  # by module name: hot paths (3.11)


class Answer(NamedTuple):
    """One request as an event: what it meant, for which type, and what it answered.

    `version` is the version an ACK accepted or a NACK rejected (empty otherwise); `error`
    a NACK's whole error detail (empty otherwise); `subscribed` the type's subscription
    after the request (None: every resource, or a type the stream does not serve), the
    protocol's own frozenset, shared (a request that leaves it unchanged keeps the same
    object). Immutable (a named tuple: one is made per request, so it is cheap to make).
    """

    kind: RequestKind
    type_url: str  # the type the request was taken for (a TypeUrl, or an unserved type)
    nonce: str = ""  # the response it answers (its `response_nonce`)
    version: str = ""
    error: str = ""
    subscribed: frozenset[str] | None = None


R_co = TypeVar("R_co", covariant=True)


class Handled(NamedTuple, Generic[R_co]):
    """What handling one request produced, in either variant: the responses to send (of
    the variant's response type `R_co`, each one push), and the request's `Answer`."""

    answer: Answer
    responses: tuple[R_co, ...] = ()


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
    return sorted({*type_urls, _EDS}, key=_ORDER)


def eds_after_cds(type_url: TypeUrl, *, cds_sent: bool) -> bool:
    """True when `type_url` is EDS and this push has sent CDS: EDS must follow."""
    return cds_sent and type_url is _EDS


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


T = TypeVar("T", bound=TypeRecord)


@dataclass
class StreamCore(Generic[T]):
    """What both stream states hold: the types served (`allowed`: a single-type service
    limits them), the snapshot served from, one record `T` per type, the nonce counter."""

    allowed: frozenset[TypeUrl] = frozenset(TypeUrl)
    snapshot: Snapshot | None = None
    types: dict[TypeUrl, T] = field(default_factory=dict)
    _nonce: int = 0

    def _record(self, type_url: TypeUrl, new: Callable[[], T]) -> T:
        """The per-type record (made by `new` on first use)."""
        record = self.types.get(type_url)
        if record is None:
            record = self.types[type_url] = new()
        return record

    def events(self) -> tuple[object, ...]:
        """What the status board is told beside the `Answer`s and responses, since the
        last call: nothing here (a state-of-the-world type's answers and pushes say it
        all); a delta stream tells each changed type (`delta.DeltaHolding`)."""
        return ()

    def _next_nonce(self) -> str:
        self._nonce += 1
        return str(self._nonce)
