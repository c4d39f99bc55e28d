"""A stream state and its status record, fed as the grpc.aio shell feeds them.

`Recorded` tells the record what `XdsService._loop` tells it, in the same order: the
snapshot before the responses it calls for, each request's `Answer`, the state's other
events (`events()`: a delta stream's changed types), then each response pushed. The record
never sees the state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xdscp.cache import Snapshot
from xdscp.server.status import StreamRecord


class Recorded:
    """One stream state (either variant) and its `StreamRecord`, fed events only."""

    def __init__(self, state: Any, record: StreamRecord) -> None:
        self.state, self.record = state, record

    def request(self, request: Any, now: float) -> Any:
        """Hand `request` to the state; tell the record; the `Handled`."""
        handled = self.state.on_request(request)
        self.record.on_answer(handled.answer, now)
        self._told(handled.responses, now)
        return handled

    def snapshot(self, snapshot: Snapshot, now: float) -> Sequence[Any]:
        """Hand a new snapshot to the state; tell the record; the responses."""
        self.record.on_snapshot(snapshot)
        responses = self.state.on_snapshot(snapshot)
        self._told(responses, now)
        return responses

    def _told(self, responses: Sequence[Any], now: float) -> None:
        self.record.on_held(self.state.events())
        for response in responses:
            self.record.on_push(response, now)
