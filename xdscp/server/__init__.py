"""The xDS server: per-stream protocol state (sans I/O) and its grpc.aio edge."""

from xdscp.server.metrics import XdsMetrics
from xdscp.server.protocol import Request, Response, StreamState
from xdscp.server.service import StreamEvent, XdsService
from xdscp.server.status import StatusBoard

__all__ = [
    "Request",
    "Response",
    "StatusBoard",
    "StreamEvent",
    "StreamState",
    "XdsMetrics",
    "XdsService",
]
