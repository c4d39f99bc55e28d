"""Fake xDS streams that check the protocol's invariants on every response they get.

Each wraps the sans-I/O stream state the server runs (`StreamState` for state of the world,
`DeltaStreamState` for delta), so a test drives one conversation request by request, as a
picky client would, and every response is checked before the test sees it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from xdscp.cache import Resource, Snapshot, TypeUrl
from xdscp.server import (
    DeltaRequest,
    DeltaResponse,
    DeltaStreamState,
    Request,
    RequestKind,
    Response,
    StreamState,
)

_SERVED = frozenset(TypeUrl)


def cluster_snapshot(
    clusters: Mapping[str, bytes],
    endpoints: Mapping[str, bytes] | None = None,
    extra: Iterable[Resource] = (),
) -> Snapshot:
    """A snapshot to drive a stream with: a Cluster of each name in `clusters` (its bytes the
    resource's contents, so changing them changes its version) and a ClusterLoadAssignment of
    each name in `endpoints` (by default one per cluster, `b"cla-"` + the cluster's bytes),
    plus any `extra` resources."""
    if endpoints is None:
        endpoints = {name: b"cla-" + value for name, value in clusters.items()}
    return Snapshot.of(
        [
            *(Resource(TypeUrl.CLUSTER, name, value) for name, value in clusters.items()),
            *(Resource(TypeUrl.ENDPOINT, name, value) for name, value in endpoints.items()),
            *extra,
        ]
    )


def _require(condition: object, message: str) -> None:
    """Fail like `assert` would, also under `python -O`: the checks are the point."""
    if not condition:
        raise AssertionError(message)


def _check_nonce(nonces: dict[str, int], type_url: str, nonce: str) -> None:
    _require(nonce.isdigit(), f"nonce {nonce!r} is not a counter")
    _require(int(nonce) > nonces.get(type_url, 0), "nonces increase")
    nonces[type_url] = int(nonce)


def check_sotw(nonces: dict[str, int], responses: tuple[Response, ...]) -> tuple[Response, ...]:
    """Check SotW responses in the order sent; `nonces` carries the last nonce of each type."""
    for r in responses:
        _require(r.version_info, "version must not be empty")
        _check_nonce(nonces, r.type_url, r.nonce)
        _require(all(res.type_url == r.type_url for res in r.resources), "type URL matches")
        names = [res.name for res in r.resources]
        _require(len(names) == len(set(names)), "no resource twice in one response")
    return responses


def check_delta(
    nonces: dict[str, int], responses: tuple[DeltaResponse, ...]
) -> tuple[DeltaResponse, ...]:
    """Check delta responses in the order sent; `nonces` carries the last nonce of each type."""
    for r in responses:
        _check_nonce(nonces, r.type_url, r.nonce)
        _require(all(res.type_url == r.type_url for res in r.resources), "type URL matches")
        _require(all(res.version for res in r.resources), "every resource has a version")
        names = [res.name for res in r.resources]
        _require(len(names) == len(set(names)), "no resource twice in one response")
        _require(len(r.removed) == len(set(r.removed)), "no name removed twice")
        _require(not set(names) & set(r.removed), "no name both sent and removed")
        if r.type_url in _SERVED:
            _require(r.system_version, "system version must not be empty")
            _require(r.resources or r.removed, "a delta response carries a change")
    return responses


class CheckedStream:
    """A SotW stream (`StreamState`) that checks invariants on every response."""

    def __init__(
        self, snapshot: Snapshot | None = None, allowed: frozenset[TypeUrl] = _SERVED
    ) -> None:
        self.state = StreamState(allowed=allowed, snapshot=snapshot)
        self.nonces: dict[str, int] = {}
        self.last_kind: RequestKind = RequestKind.NONE

    def ask(
        self,
        type_url: str,
        nonce: str = "",
        version: str = "",
        names: tuple[str, ...] = (),
        error: str | None = None,
    ) -> tuple[Response, ...]:
        """Send one DiscoveryRequest; its checked responses."""
        outcome = self.state.on_request(Request(type_url, version, nonce, names, error))
        self.last_kind = outcome.answer.kind
        return check_sotw(self.nonces, outcome.responses)

    def push(self, snapshot: Snapshot) -> tuple[Response, ...]:
        """A new snapshot reaches the stream; the checked responses it sends."""
        return check_sotw(self.nonces, self.state.on_snapshot(snapshot))

    def ack(self, r: Response, names: tuple[str, ...] = ()) -> tuple[Response, ...]:
        """ACK `r` (subscribing to `names`); the checked responses that calls for."""
        return self.ask(r.type_url, r.nonce, r.version_info, names)


class CheckedDeltaStream:
    """A delta stream (`DeltaStreamState`) that checks invariants on every response."""

    def __init__(
        self, snapshot: Snapshot | None = None, allowed: frozenset[TypeUrl] = _SERVED
    ) -> None:
        self.state = DeltaStreamState(allowed=allowed, snapshot=snapshot)
        self.nonces: dict[str, int] = {}
        self.last_kind: RequestKind = RequestKind.NONE

    def ask(
        self,
        type_url: str,
        subscribe: tuple[str, ...] = (),
        unsubscribe: tuple[str, ...] = (),
        *,
        nonce: str = "",
        initial_versions: Mapping[str, str] | None = None,
        error: str | None = None,
    ) -> tuple[DeltaResponse, ...]:
        """Send one DeltaDiscoveryRequest; its checked responses."""
        request = DeltaRequest(
            type_url, subscribe, unsubscribe, dict(initial_versions or {}), nonce, error
        )
        outcome = self.state.on_request(request)
        self.last_kind = outcome.answer.kind
        return check_delta(self.nonces, outcome.responses)

    def push(self, snapshot: Snapshot) -> tuple[DeltaResponse, ...]:
        """A new snapshot reaches the stream; the checked responses it sends."""
        return check_delta(self.nonces, self.state.on_snapshot(snapshot))

    def ack(self, r: DeltaResponse, subscribe: tuple[str, ...] = ()) -> tuple[DeltaResponse, ...]:
        """ACK `r` (subscribing to `subscribe` too); the checked responses that calls for."""
        return self.ask(r.type_url, subscribe, nonce=r.nonce)

    def nack(self, r: DeltaResponse, error: str = "rejected") -> tuple[DeltaResponse, ...]:
        """NACK `r` with `error`; the checked responses that calls for."""
        return self.ask(r.type_url, nonce=r.nonce, error=error)
