"""The xDS server: per-stream protocol state (sans I/O) and its grpc.aio edge."""

from xdscp.server.csds import CsdsService, config_dump
from xdscp.server.delta import DeltaRequest, DeltaResponse, DeltaStreamState
from xdscp.server.metrics import XdsMetrics
from xdscp.server.nodes import NodeGrouper, NodeInfo, grouper, node_info
from xdscp.server.protocol import Request, Response, StreamState
from xdscp.server.rules import Kind, Outcome
from xdscp.server.seams import ServedResponse, SnapshotSource, StreamProtocol
from xdscp.server.service import EventKind, StreamEvent, XdsService
from xdscp.server.status import NACK_HISTORY, ClientStatus, ConfigStatus, StatusBoard
from xdscp.server.tls import load_server_tls

__all__ = [
    "NACK_HISTORY",
    "ClientStatus",
    "ConfigStatus",
    "CsdsService",
    "DeltaRequest",
    "DeltaResponse",
    "DeltaStreamState",
    "EventKind",
    "Kind",
    "NodeGrouper",
    "NodeInfo",
    "Outcome",
    "Request",
    "Response",
    "ServedResponse",
    "SnapshotSource",
    "StatusBoard",
    "StreamEvent",
    "StreamProtocol",
    "StreamState",
    "XdsMetrics",
    "XdsService",
    "config_dump",
    "grouper",
    "load_server_tls",
    "node_info",
]
