"""CSDS: `envoy.service.status.v3.ClientStatusDiscoveryService` over the status board.

`client_status` answers one `ClientStatusRequest` from the board (no I/O): one
`ClientConfig` per connected node id (its streams merged), the node as it announced
itself, and one `GenericXdsConfig` per resource (`StreamRecord.resources`): type URL,
name, the version the client accepted, the resource as an `Any` (while the snapshot still
holds that version; never with `exclude_resource_contents`), when its status was last set,
`config_status` and `client_status`, and for a NACKed resource `error_state` (the client's
error, the rejected version, when). `CsdsService` is the grpc.aio edge: unary
`FetchClientStatus` and streaming `StreamClientStatus` (one answer per request); a
malformed matcher ends the call with INVALID_ARGUMENT and the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import structlog
from envoy.admin.v3 import config_dump_shared_pb2 as dump_pb2
from envoy.config.core.v3 import base_pb2
from envoy.service.status.v3 import csds_pb2
from google.protobuf import any_pb2, json_format, timestamp_pb2

from xdscp.cache import short_name
from xdscp.errors import InvalidMatcherError
from xdscp.server.node_match import node_filter
from xdscp.server.nodes import NodeInfo
from xdscp.server.status import ResourceStatus, StatusBoard

log = structlog.get_logger(__name__)

SERVICE = "envoy.service.status.v3.ClientStatusDiscoveryService"


def client_status(board: StatusBoard, request: Any) -> Any:
    """The `ClientStatusResponse` for a `ClientStatusRequest` (InvalidMatcherError if bad)."""
    wanted = node_filter(request.node_matchers)
    with_contents = not request.exclude_resource_contents
    response = csds_pb2.ClientStatusResponse()
    for records in board.by_node().values():
        node = records[0].node
        if not wanted(node):
            continue
        config = response.config.add(node=node_proto(node))
        for record in records:
            for status in record.resources():
                config.generic_xds_configs.append(generic_config(status, with_contents))
    return response


def node_proto(node: NodeInfo) -> Any:
    """The `envoy.config.core.v3.Node` a client announced (the parts xdscp keeps)."""
    proto = base_pb2.Node(
        id=node.id,
        cluster=node.cluster,
        user_agent_name=node.user_agent,
        user_agent_version=node.user_agent_version,
    )
    if node.metadata:
        json_format.ParseDict(dict(node.metadata), proto.metadata)
    if node.locality:
        json_format.ParseDict(dict(node.locality), proto.locality)
    return proto


def _timestamp(at: float) -> Any:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(at * 1e9))
    return stamp


def generic_config(status: ResourceStatus, with_contents: bool = True) -> Any:
    """One resource's `ClientConfig.GenericXdsConfig`."""
    config = csds_pb2.ClientConfig.GenericXdsConfig(
        type_url=str(status.type_url),
        name=status.name,
        version_info=status.version,
        config_status=csds_pb2.ConfigStatus.Value(str(status.config_status)),
        client_status=dump_pb2.ClientResourceStatus.Value(str(status.client_status)),
    )
    if status.last_updated:
        config.last_updated.CopyFrom(_timestamp(status.last_updated))
    if with_contents and status.resource is not None:
        config.xds_config.CopyFrom(any_pb2.Any.FromString(status.resource))
    if status.error is not None:
        config.error_state.CopyFrom(
            dump_pb2.UpdateFailureState(
                details=status.error.error,
                version_info=status.sent_version or status.error.version,
                last_update_attempt=_timestamp(status.error.at),
            )
        )
    return config


def decode(resource: bytes) -> dict[str, Any]:
    """A resource (a serialized Any) as JSON, its typed fields decoded where known."""
    wrapped = any_pb2.Any.FromString(resource)
    try:
        return dict(json_format.MessageToDict(wrapped, preserving_proto_field_name=True))
    except (TypeError, json_format.Error):  # a type this process has no descriptor for
        return {"@type": wrapped.type_url, "undecoded_bytes": len(wrapped.value)}


def config_dump(board: StatusBoard, node_id: str, type_name: str = "") -> dict[str, Any] | None:
    """What one node was sent and accepted, resource by resource, decoded (`xdscp config`,
    `/debug/config_dump`); `type_name` (`Cluster`, ...) keeps one type. None: not connected."""
    records = sorted(
        (r for r in board.streams.values() if r.node.id == node_id), key=lambda r: r.connected_at
    )
    if not records:
        return None
    resources = []
    for record in records:
        for status in record.resources():
            if type_name and short_name(status.type_url) != type_name:
                continue
            entry = status.as_json()
            entry["config"] = decode(status.resource) if status.resource is not None else None
            resources.append(entry)
    return {
        "node": node_id, "client": str(records[0].node.kind), "group": records[0].group,
        "resources": resources, "nacks": board.nack_history(node_id),
    }  # fmt: skip


class CsdsService:
    """The grpc.aio edge of CSDS, served beside ADS on the xDS port."""

    def __init__(self, board: StatusBoard) -> None:
        self.board = board

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        """The generic handler for both CSDS methods."""
        serialize = csds_pb2.ClientStatusResponse.SerializeToString
        parse = csds_pb2.ClientStatusRequest.FromString
        methods = {
            "FetchClientStatus": grpc.unary_unary_rpc_method_handler(
                self.fetch, request_deserializer=parse, response_serializer=serialize
            ),
            "StreamClientStatus": grpc.stream_stream_rpc_method_handler(
                self.stream, request_deserializer=parse, response_serializer=serialize
            ),
        }
        return [grpc.method_handlers_generic_handler(SERVICE, methods)]

    async def _answer(self, request: Any, context: Any) -> Any:
        try:
            return client_status(self.board, request)
        except InvalidMatcherError as exc:
            log.info("csds_request_refused", error=str(exc))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"xdscp: {exc}")

    async def fetch(self, request: Any, context: Any) -> Any:
        """FetchClientStatus: the status of every matching node, once."""
        return await self._answer(request, context)

    async def stream(self, requests: AsyncIterator[Any], context: Any) -> None:
        """StreamClientStatus: one answer per request, until the client closes."""
        async for request in requests:
            await context.write(await self._answer(request, context))
