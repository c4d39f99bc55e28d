"""The legal states of one type on a delta stream, and how they move.

A `DeltaTypeState` (`delta.py`) holds a `Phase` (the same phases as state of the world:
where the latest response stands); it moves only along `DELTA_TRANSITIONS` (`delta_moved`
raises `IllegalTransitionError` on any other move: a defect in xdscp, since every request
is classified first).

Delta differs from state of the world in two steps: several responses may await an answer
at once, so a NACK of an earlier one (`NACK_EARLIER`) is a rejection too; and when there is
nothing to send and nothing awaits an answer, the stream settles (`SETTLE`: the client is in
sync). `delta_violations` lists which of the rules tying the other fields to the phase (and
to each other) a state breaks; the property tests run every conversation through it.

    UNSUBSCRIBED --subscribe--> REQUESTED --send--> SENT ---ack---> ACKED
                                 (settle)      (nack earlier)   (settle)  |
                                                     +---nack---> NACKED <-nack earlier-+
    from REQUESTED, SENT, ACKED, NACKED: --send--> SENT;
    NACKED --settle--> ACKED; NACKED --nack earlier--> NACKED
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

from xdscp.cache import WILDCARD_TYPES, TypeUrl, entry_digest, set_version
from xdscp.server.phases import Phase, move_in, moves_in
from xdscp.server.rules import WILDCARD

if TYPE_CHECKING:
    from xdscp.server.delta import DeltaTypeState

MAX_PENDING = 64  # responses awaiting an ACK that a stream remembers (per type)


class DeltaStep(StrEnum):
    """What moves a delta phase."""

    SUBSCRIBE = "subscribe"  # the first request of the type
    SEND = "send"  # a response sent
    SETTLE = "settle"  # nothing to send, nothing awaiting an answer: in sync
    ACK = "ack"  # the latest response accepted (an earlier one's ACK moves nothing)
    NACK = "nack"  # the latest response rejected
    NACK_EARLIER = "nack_earlier"  # an earlier response, still awaiting an answer, rejected


_ANSWERED = (Phase.SENT, Phase.ACKED, Phase.NACKED)
DELTA_TRANSITIONS: Mapping[tuple[Phase, DeltaStep], Phase] = MappingProxyType({
    (Phase.UNSUBSCRIBED, DeltaStep.SUBSCRIBE): Phase.REQUESTED,
    (Phase.REQUESTED, DeltaStep.SETTLE): Phase.REQUESTED,  # nothing to send yet
    (Phase.REQUESTED, DeltaStep.SEND): Phase.SENT,
    **{(p, DeltaStep.SEND): Phase.SENT for p in _ANSWERED},
    (Phase.SENT, DeltaStep.ACK): Phase.ACKED,
    (Phase.SENT, DeltaStep.NACK): Phase.NACKED,
    (Phase.SENT, DeltaStep.NACK_EARLIER): Phase.SENT,  # the latest still awaits its answer
    (Phase.ACKED, DeltaStep.NACK_EARLIER): Phase.NACKED,
    (Phase.NACKED, DeltaStep.NACK_EARLIER): Phase.NACKED,
    (Phase.ACKED, DeltaStep.SETTLE): Phase.ACKED,
    (Phase.NACKED, DeltaStep.SETTLE): Phase.ACKED,  # back to what the client holds
})  # fmt: skip


def delta_moved(phase: Phase, step: DeltaStep) -> Phase:
    """The phase `step` leads to from `phase`."""
    return move_in(DELTA_TRANSITIONS, phase, step)


def delta_moves(step: DeltaStep) -> dict[Phase, Phase]:
    """The phase `step` leads to from each phase it may be taken in (see `moves_in`)."""
    return moves_in(DELTA_TRANSITIONS, step)


def delta_violations(ts: DeltaTypeState, type_url: TypeUrl) -> list[str]:
    """The rules tying `ts`'s fields to its phase and to each other that it breaks."""
    phase, latest = ts.phase, int(ts.sent_nonce or 0)
    digest = 0
    for name, version in ts.held.items():
        digest ^= entry_digest(name, version)
    awaiting = {entry[0] for undo in ts.pending.values() for entry in undo}
    wildcard_type = type_url in WILDCARD_TYPES
    rules = {
        "subscribed exactly when requested": ts.subscribed == (phase is not Phase.UNSUBSCRIBED),
        "a nonce exactly once something was sent": bool(latest) == (phase in _ANSWERED),
        "SENT exactly while the latest response awaits an answer": (phase is Phase.SENT)
        == (ts.sent_nonce in ts.pending),
        "only sent responses await an answer": all(0 < int(n) <= latest for n in ts.pending),
        "a NACKed response awaits no answer": not ts.pending.keys() & ts.nacked_nonces.keys(),
        "at most MAX_PENDING responses remembered": max(len(ts.pending), len(ts.nacked_nonces))
        <= MAX_PENDING,
        "the digest is that of what the client holds": digest == ts.digest,
        "held names are subscribed ones": all(ts.wants(n) for n in ts.held),
        "names awaiting an answer are subscribed ones": all(ts.wants(n) for n in awaiting),
        "rejected names are subscribed ones": all(ts.wants(n) for n in ts.rejected),
        "blocked names are rejected ones": ts.blocked <= ts.rejected.keys(),
        "the responses awaiting an answer as told are those": ts.told_pending is None
        or ts.told_pending == tuple(ts.pending.items()),
        "the version last made is its digest's": ts.named_version == set_version(ts.named_digest),
        "a wildcard only for Listener and Cluster": wildcard_type or not ts.wildcard,
        "`*` is no name for Listener and Cluster": not wildcard_type or WILDCARD not in ts.explicit,
        "REQUESTED: its versions agree": phase is not Phase.REQUESTED
        or ts.sent_version == ts.acked_version,
        "ACKED: the latest version accepted": phase is not Phase.ACKED
        or ts.acked_version == ts.sent_version,
        "NACKED: the latest version rejected": phase is not Phase.NACKED
        or ts.nacked_version == ts.sent_version,
    }
    return [rule for rule, holds in rules.items() if not holds]
