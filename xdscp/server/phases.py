"""The legal states of one type on a state-of-the-world stream, and how they move.

A `TypeState` (`protocol.py`) holds a `Phase`; it moves only along `TRANSITIONS`, h2-style
(`moved` raises on any other move: a defect, never the client's doing, since every request
is classified first). `violations` lists which of the rules tying the other fields to the
phase a state breaks; the property tests run every conversation through it.

    UNSUBSCRIBED --subscribe--> REQUESTED --send--> SENT --ack--> ACKED
                                                     |  <--send--   |
                                                     +---nack--> NACKED (ack/send leave it)
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

from xdscp.cache import WILDCARD_TYPES, TypeUrl, entry_digest
from xdscp.errors import XdscpError

if TYPE_CHECKING:
    from xdscp.server.protocol import TypeState


class Phase(StrEnum):
    """Where one type's conversation stands."""

    UNSUBSCRIBED = "unsubscribed"  # never requested
    REQUESTED = "requested"  # subscribed, nothing sent yet
    SENT = "sent"  # the latest response is not answered yet
    ACKED = "acked"  # the client accepted the latest response
    NACKED = "nacked"  # the client rejected the latest response


class Step(StrEnum):
    """What moves a phase: the first request, a response sent, an ACK, a NACK."""

    SUBSCRIBE = "subscribe"
    SEND = "send"
    ACK = "ack"
    NACK = "nack"


_ANSWERED = (Phase.SENT, Phase.ACKED, Phase.NACKED)
TRANSITIONS: Mapping[tuple[Phase, Step], Phase] = MappingProxyType({
    (Phase.UNSUBSCRIBED, Step.SUBSCRIBE): Phase.REQUESTED,
    (Phase.REQUESTED, Step.SEND): Phase.SENT,
    **{(p, Step.SEND): Phase.SENT for p in _ANSWERED},
    **{(p, Step.ACK): Phase.ACKED for p in _ANSWERED},  # even after a NACK of the same one
    (Phase.SENT, Step.NACK): Phase.NACKED,
    (Phase.ACKED, Step.NACK): Phase.NACKED,  # (a NACK of a NACKED one is a duplicate)
})  # fmt: skip


class IllegalTransitionError(XdscpError):
    """A stream state tried a move its transition table does not have (a defect in xdscp)."""


StepT = TypeVar("StepT", bound=StrEnum)  # the steps of one table (SotW or delta)


def move_in(table: Mapping[tuple[Phase, StepT], Phase], phase: Phase, step: StepT) -> Phase:
    """The phase `step` leads to from `phase` in `table` (`IllegalTransitionError`: none)."""
    try:
        return table[phase, step]
    except KeyError:
        raise IllegalTransitionError(f"xdscp: no move {step} from {phase}") from None


def moves_in(table: Mapping[tuple[Phase, StepT], Phase], step: StepT) -> dict[Phase, Phase]:
    """The phase `step` leads to in `table` from each phase it may be taken in (for hot
    paths: a phase it is missing is an illegal move, which `move_in` reports)."""
    return {phase: to for (phase, taken), to in table.items() if taken is step}


def moved(phase: Phase, step: Step) -> Phase:
    """The phase `step` leads to from `phase`."""
    return move_in(TRANSITIONS, phase, step)


def moves(step: Step) -> dict[Phase, Phase]:
    """The phase `step` leads to from each phase it may be taken in (see `moves_in`)."""
    return moves_in(TRANSITIONS, step)


def violations(ts: TypeState, type_url: TypeUrl) -> list[str]:
    """The rules tying `ts`'s fields to its phase that it breaks (none, in a legal state)."""
    phase, sent_any = ts.phase, bool(ts.sent_nonce)
    digest = 0
    for name, version in ts.sent.items():
        digest ^= entry_digest(name, version)
    rules = {
        "subscribed exactly when requested": ts.subscribed == (phase is not Phase.UNSUBSCRIBED),
        "a nonce exactly once something was sent": sent_any == (phase in _ANSWERED),
        "nothing held before the first response": sent_any or not (ts.sent or ts.unacked),
        "the digest is that of what the client holds": digest == ts.sent_digest,
        "held names are subscribed ones": ts.names is None or ts.sent.keys() <= ts.names,
        "a wildcard only for Listener and Cluster": ts.names is not None
        or type_url in WILDCARD_TYPES
        or not ts.subscribed,
        "a legacy wildcard is a wildcard": not ts.legacy_wildcard or ts.names is None,
        "NACKED: the latest response was rejected": phase is not Phase.NACKED
        or ts.nacked_nonce == ts.sent_nonce,
        "NACKED: its version is the rejected one": phase is not Phase.NACKED
        or ts.nacked_version == ts.sent_version,
        "ACKED: nothing left unaccepted": phase is not Phase.ACKED or not ts.unacked,
        "only EDS waits to answer an ACK": not ts.answer_next_ack or type_url is TypeUrl.ENDPOINT,
    }
    return [rule for rule, holds in rules.items() if not holds]
