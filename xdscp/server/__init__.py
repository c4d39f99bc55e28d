"""The xDS server: per-stream protocol state (sans I/O) and its grpc.aio edge."""

from xdscp.server.csds import CsdsService, config_dump
from xdscp.server.delta import DeltaOutcome, DeltaRequest, DeltaResponse, DeltaStreamState
from xdscp.server.metrics import XdsMetrics
from xdscp.server.nodes import NodeGrouper, NodeInfo, grouper, node_info
from xdscp.server.protocol import Outcome, Request, Response, StreamState
from xdscp.server.rules import Kind
from xdscp.server.seams import ServedResponse, SnapshotSource, StreamOutcome, StreamProtocol
from xdscp.server.service import StreamEvent, XdsService
from xdscp.server.status import NACK_HISTORY, ClientStatus, ConfigStatus, StatusBoard
from xdscp.server.tls import load_server_tls

__all__ = [
    "NACK_HISTORY",
    "ClientStatus",
    "ConfigStatus",
    "CsdsService",
    "DeltaOutcome",
    "DeltaRequest",
    "DeltaResponse",
    "DeltaStreamState",
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
    "StreamOutcome",
    "StreamProtocol",
    "StreamState",
    "XdsMetrics",
    "XdsService",
    "config_dump",
    "grouper",
    "load_server_tls",
    "node_info",
]
