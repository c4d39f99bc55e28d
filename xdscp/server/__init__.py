"""The xDS server: per-stream protocol state (sans I/O) and its grpc.aio edge."""

from xdscp.server.csds import CsdsService, config_dump
from xdscp.server.delta import DeltaStreamState
from xdscp.server.messages import DeltaRequest, DeltaResponse, Request, Response
from xdscp.server.metrics import XdsMetrics
from xdscp.server.nodes import NodeGrouper, NodeInfo, grouper, node_info
from xdscp.server.protocol import StreamState
from xdscp.server.rules import Answer, Handled, RequestKind
from xdscp.server.seams import ServedResponse, SnapshotFeed, StreamProtocol
from xdscp.server.service import StreamEvent, StreamEventKind, XdsService
from xdscp.server.status import NACK_HISTORY, ClientStatus, ConfigStatus, StatusBoard
from xdscp.server.tls import load_server_tls

__all__ = [
    "NACK_HISTORY",
    "Answer",
    "ClientStatus",
    "ConfigStatus",
    "CsdsService",
    "DeltaRequest",
    "DeltaResponse",
    "DeltaStreamState",
    "Handled",
    "NodeGrouper",
    "NodeInfo",
    "Request",
    "RequestKind",
    "Response",
    "ServedResponse",
    "SnapshotFeed",
    "StatusBoard",
    "StreamEvent",
    "StreamEventKind",
    "StreamProtocol",
    "StreamState",
    "XdsMetrics",
    "XdsService",
    "config_dump",
    "grouper",
    "load_server_tls",
    "node_info",
]
