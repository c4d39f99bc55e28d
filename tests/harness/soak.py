"""How long the soaks run: longer than any keepalive or write timeout could end an idle stream."""

from __future__ import annotations

import os

from xdscp import keepalive
from xdscp.server.service import WRITE_TIMEOUT_S

# The longest time after which an idle stream could be ended: a too-strict server refusing
# Envoy's pings (the first is free, then MAX_PING_STRIKES + 1 early ones, each at most the
# interval plus Envoy's jitter apart), xdscp's own ping and its timeout, the write timeout.
WINDOW_S = max(
    (keepalive.MAX_PING_STRIKES + 2) * keepalive.ENVOY_PING_INTERVAL_S
    * (1 + keepalive.ENVOY_PING_JITTER),
    keepalive.SERVER_PING_INTERVAL_S + keepalive.SERVER_PING_TIMEOUT_S,
    WRITE_TIMEOUT_S,
)  # fmt: skip
SOAK_S = max(2.5 * WINDOW_S, float(os.environ.get("XDSCP_SOAK_SECONDS", "0")))
