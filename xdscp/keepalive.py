"""The HTTP/2 keepalive contract between xdscp's xDS server and its clients, in one place.

Both ends of an xDS connection ping the other to find a dead peer. A gRPC server counts a
client's pings that come closer together than its minimum interval as strikes and, past
`MAX_PING_STRIKES`, closes the connection (GOAWAY ENHANCE_YOUR_CALM "too_many_pings"): every
stream on it ends and the client reconnects and is sent everything again. grpc's own default
minimum is 5 minutes, so an Envoy pinging every 15 s lost its ADS stream every ~80 s.

The bootstraps xdscp writes (`xdscp.clients`) and the xDS server's options (`server_options`)
are both derived from the constants below, so they cannot disagree.
"""

from __future__ import annotations

# What `xdscp bootstrap envoy` sets (the xDS cluster's HTTP/2 `connection_keepalive`): Envoy
# pings every interval plus 0..15 % (its default jitter, only ever added), counted from the
# previous ping's answer, and closes the connection when an answer takes longer than the timeout.
ENVOY_PING_INTERVAL_S = 15.0
ENVOY_PING_TIMEOUT_S = 5.0
ENVOY_PING_JITTER = 0.15

# grpc-go's and grpcio's xDS channels: a fixed keepalive of 5 minutes (20 s timeout), common to
# gRPC's languages; a bootstrap cannot change it (`xdscp bootstrap grpc` has nothing to set).
GRPC_XDS_PING_INTERVAL_S = 300.0
GRPC_XDS_PING_TIMEOUT_S = 20.0

CLIENT_PING_INTERVALS_S = {"envoy": ENVOY_PING_INTERVAL_S, "grpc": GRPC_XDS_PING_INTERVAL_S}

# The server accepts pings twice as close together as the fastest client sends them: a ping
# delayed on the way and the next one on time still arrive more than this apart.
PING_MARGIN = 2.0
MIN_PING_INTERVAL_S = min(CLIENT_PING_INTERVALS_S.values()) / PING_MARGIN
MAX_PING_STRIKES = 2  # grpc's default: the third early ping closes the connection

# xdscp's own pings, to find dead peers (a host gone without closing its connections): a
# connection that has been silent this long is pinged, and closed when the ping is not
# answered within the timeout. Clients do not police a server's pings.
SERVER_PING_INTERVAL_S = 30.0
SERVER_PING_TIMEOUT_S = 10.0


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def server_options() -> list[tuple[str, int]]:
    """The grpc server channel options that carry out the contract."""
    return [
        ("grpc.keepalive_time_ms", _ms(SERVER_PING_INTERVAL_S)),
        ("grpc.keepalive_timeout_ms", _ms(SERVER_PING_TIMEOUT_S)),
        # pings are policed by the interval below even on a connection with no stream yet
        # (otherwise grpc allows one per 2 hours there)
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", _ms(MIN_PING_INTERVAL_S)),
        ("grpc.http2.max_ping_strikes", MAX_PING_STRIKES),
    ]
