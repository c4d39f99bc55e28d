"""A proxyless gRPC client: dials `xds:///SERVICE` through xdscp, calls the demo backends'
`/xdscp.demo.Echo/Who` N times and prints which backend answered each call.

    xdscp bootstrap grpc --node-id app-1 --xds 127.0.0.1:18000 > bootstrap.json
    GRPC_XDS_BOOTSTRAP=bootstrap.json python examples/grpc_client.py xds:///greeter 4

gRPC reads the bootstrap once per process (GRPC_XDS_BOOTSTRAP names the file,
GRPC_XDS_BOOTSTRAP_CONFIG holds the JSON itself). No xdscp import: any gRPC client works.
"""

from __future__ import annotations

import sys

import grpc
from google.protobuf import wrappers_pb2


def main(target: str, calls: int) -> int:
    """Make `calls` calls on `target`; print each answering backend's name."""
    with grpc.insecure_channel(target) as channel:
        who = channel.unary_unary(
            "/xdscp.demo.Echo/Who",
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=wrappers_pb2.StringValue.FromString,
        )
        for _ in range(calls):
            # wait_for_ready: the first call waits for xdscp's resources instead of failing
            reply = who(wrappers_pb2.StringValue(), timeout=20, wait_for_ready=True)
            print(reply.value)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1))
