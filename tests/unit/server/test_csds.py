"""CSDS: node matchers, and ClientStatusResponses served over a real grpc.aio server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from envoy.admin.v3 import config_dump_shared_pb2 as dump_pb2
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from envoy.type.matcher.v3 import node_pb2
from google.protobuf import any_pb2, json_format
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.server.recorded import Recorded
from xdscp.cache import Resource, Snapshot, TypeUrl
from xdscp.errors import InvalidMatcherError
from xdscp.server import CsdsService, StatusBoard
from xdscp.server.node_match import node_filter
from xdscp.server.nodes import NodeInfo
from xdscp.server.protocol import Request, StreamState
from xdscp.server.rules import RequestKind
from xdscp.server.status import StreamRecord

C, E = TypeUrl.CLUSTER, TypeUrl.ENDPOINT
META = {"team": "pay", "canary": True, "zones": ["a", "b"], "weight": 3.0, "deep": {"k": "v"}}


def matcher(spec: dict[str, Any]) -> Any:
    return json_format.ParseDict(spec, node_pb2.NodeMatcher())


def matches(spec: dict[str, Any], node: NodeInfo) -> bool:
    return node_filter([matcher(spec)])(node)


NODE = NodeInfo("envoy-edge-1", metadata=META)


def meta(path: str, value: dict[str, Any] | None = None) -> dict[str, Any]:
    """A NodeMatcher spec with one StructMatcher on dotted `path` ("" for none)."""
    struct: dict[str, Any] = {"path": [{"key": k} for k in path.split(".")] if path else []}
    if value is not None:
        struct["value"] = value
    return {"node_metadatas": [struct]}


def exact(text: str) -> dict[str, Any]:
    return {"string_match": {"exact": text}}


def between(start: float, end: float) -> dict[str, Any]:
    return {"double_match": {"range": {"start": start, "end": end}}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"node_id": {"exact": "envoy-edge-1"}}, True),
        ({"node_id": {"exact": "envoy-edge"}}, False),
        ({"node_id": {"prefix": "envoy-"}}, True),
        ({"node_id": {"prefix": "grpc-"}}, False),
        ({"node_id": {"suffix": "EDGE-1", "ignore_case": True}}, True),
        (meta("team", exact("pay")), True),
        (meta("team", exact("ops")), False),
        (meta("canary", {"bool_match": True}), True),
        (meta("zones", {"list_match": {"one_of": exact("b")}}), True),
        (meta("deep.k", {"present_match": True}), True),
        (meta("nope", {"present_match": True}), False),
        (meta("weight", between(1, 5)), True),
        ({"node_id": {"prefix": "envoy-"}} | meta("team", exact("ops")), False),
    ],
)
def test_node_matcher(spec: dict[str, Any], expected: bool) -> None:
    """Node id (exact, prefix, suffix, ignore_case) and metadata (string, bool, list,
    nested presence, number range) match as Envoy's matchers do; all parts must match."""
    assert matches(spec, NODE) is expected


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"node_id": {"safe_regex": {"regex": "(a+)+$"}}}, "node_id"),
        ({"node_id": {}}, "node_id"),
        (meta("", {"bool_match": True}), "node_metadatas[0].path"),
        (meta("a"), "node_metadatas[0].value"),
        (meta("a", between(5, 1)), "node_metadatas[0].value.double_match.range"),
    ],
)
def test_invalid_matchers_are_refused_with_the_field(spec: dict[str, Any], field: str) -> None:
    """A regex (no linear-time engine), an empty pattern, a path-less or value-less struct
    matcher, an empty range: InvalidMatcherError naming the field."""
    with pytest.raises(InvalidMatcherError) as caught:
        node_filter([matcher(spec)])
    assert caught.value.field == f"node_matchers[0].{field}"


def string_spec(kind: str, text: str, fold: bool) -> dict[str, Any]:
    """A StringMatcher spec: one pattern of `kind` (none if ""), maybe case-insensitive."""
    spec: dict[str, Any] = {kind: text} if kind else {}
    return spec | {"ignore_case": True} if fold else spec


STRINGS = st.builds(
    string_spec,
    st.sampled_from(["", "exact", "prefix", "suffix", "contains"]),
    st.text(max_size=4),
    st.booleans(),
)
VALUES = st.recursive(
    st.one_of(
        st.just({}),
        st.builds(lambda s: {"string_match": s}, STRINGS),
        st.builds(lambda b: {"bool_match": b}, st.booleans()),
        st.builds(lambda b: {"present_match": b}, st.booleans()),
        st.builds(between, st.floats(-5, 5), st.floats(-5, 5)),
    ),
    lambda inner: st.builds(lambda v: {"list_match": {"one_of": v}}, inner),
    max_leaves=4,
)
SCALARS = st.one_of(st.text(max_size=3), st.booleans(), st.none(), st.floats(allow_nan=False))


@given(
    node_id=STRINGS,
    structs=st.lists(st.tuples(st.lists(st.text(max_size=3), max_size=3), VALUES), max_size=3),
    metadata=st.dictionaries(st.text(max_size=3), SCALARS, max_size=3),
)
def test_any_matcher_compiles_or_is_refused_and_never_crashes(
    node_id: dict[str, Any],
    structs: list[tuple[list[str], dict[str, Any]]],
    metadata: dict[str, Any],
) -> None:
    """Whatever a CSDS request's matchers hold: InvalidMatcherError, or a predicate that
    answers True or False for any node."""
    spec: dict[str, Any] = {"node_id": node_id}
    spec["node_metadatas"] = [
        {"path": [{"key": k} for k in path], **({"value": value} if value else {})}
        for path, value in structs
    ]
    refused: InvalidMatcherError | None = None
    try:
        test = node_filter([matcher(spec)])
    except InvalidMatcherError as exc:
        refused = exc
    if refused is not None:
        assert refused.field.startswith("node_matchers[0]")
    else:
        assert test(NodeInfo("x", metadata=metadata)) in {True, False}


def _any(type_url: str, value: bytes) -> bytes:
    return any_pb2.Any(type_url=type_url, value=value).SerializeToString()


def _record(node_id: str, metadata: dict[str, Any]) -> StreamRecord:
    snapshot = Snapshot.of([Resource(C, "web", _any(C, b"c1")), Resource(E, "web", _any(E, b"e1"))])
    record = StreamRecord(NodeInfo(node_id, metadata=metadata), "ADS", "envoy", snapshot)
    fed = Recorded(StreamState(snapshot=snapshot), record)
    (cds,) = fed.request(Request(C), 10.0).responses
    fed.request(Request(C, cds.version_info, cds.nonce), 11.0)
    (eds,) = fed.request(Request(E, resource_names=("web", "gone")), 12.0).responses
    outcome = fed.request(Request(E, "", eds.nonce, ("web", "gone"), "rejected: bad CLA"), 13.0)
    assert outcome.answer.kind is RequestKind.NACK
    return record  # fmt: skip


@pytest.fixture
async def csds() -> AsyncIterator[Any]:
    board = StatusBoard()
    board.add(_record("envoy-1", {"team": "pay"}))
    board.add(_record("grpc-1", {"team": "ops"}))
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(CsdsService(board).handlers())
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel)
    await server.stop(None)


async def test_fetch_reports_every_resource_of_matching_nodes(csds: Any) -> None:
    """Fetch by id prefix: one ClientConfig per matching node, the ACKed cluster with its
    resource, the NACKed CLA with the client's error, the absent name DOES_NOT_EXIST."""
    request = csds_pb2.ClientStatusRequest(
        node_matchers=[matcher({"node_id": {"prefix": "envoy-"}})]
    )
    (config,) = (await csds.FetchClientStatus(request)).config
    assert config.node.id == "envoy-1"
    assert json_format.MessageToDict(config.node.metadata) == {"team": "pay"}
    by = {(g.type_url, g.name): g for g in config.generic_xds_configs}
    cluster, cla, gone = by[(C, "web")], by[(E, "web")], by[(E, "gone")]
    assert cluster.client_status == dump_pb2.ACKED
    assert cluster.config_status == csds_pb2.SYNCED
    assert cluster.xds_config.type_url == C
    assert cluster.last_updated.seconds == 11
    assert cla.client_status == dump_pb2.NACKED
    assert cla.config_status == csds_pb2.ERROR
    assert cla.error_state.details == "rejected: bad CLA"
    assert cla.error_state.last_update_attempt.seconds == 13
    assert cla.error_state.version_info
    assert gone.client_status == dump_pb2.DOES_NOT_EXIST  # fmt: skip


async def test_stream_answers_each_request_and_bad_matcher_is_invalid_argument(csds: Any) -> None:
    """StreamClientStatus answers every request; metadata matching; a regex matcher ends
    the call with INVALID_ARGUMENT naming the field, and the server goes on serving."""
    by_team = matcher(
        {
            "node_metadatas": [
                {"path": [{"key": "team"}], "value": {"string_match": {"exact": "ops"}}}
            ]
        }
    )
    requests = [
        csds_pb2.ClientStatusRequest(),
        csds_pb2.ClientStatusRequest(node_matchers=[by_team], exclude_resource_contents=True),
    ]
    answers = [r async for r in csds.StreamClientStatus(iter(requests))]
    assert [sorted(c.node.id for c in a.config) for a in answers] == [
        ["envoy-1", "grpc-1"],
        ["grpc-1"],
    ]
    assert not any(g.HasField("xds_config") for g in answers[1].config[0].generic_xds_configs)
    bad = csds_pb2.ClientStatusRequest(
        node_matchers=[matcher({"node_id": {"safe_regex": {"regex": "x"}}})]
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await csds.FetchClientStatus(bad)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "node_matchers[0].node_id" in (caught.value.details() or "")
    everyone = await csds.FetchClientStatus(csds_pb2.ClientStatusRequest())
    assert len(everyone.config) == 2
