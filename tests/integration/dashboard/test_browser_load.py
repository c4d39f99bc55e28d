"""The dashboard shows each endpoint's measured load beside its predicted share, in a real
headless browser against a running `xdscp serve` with a real etcd.

A node subscribed to `web` (an ADS stream) reports its load over LRS on serve's xDS port
(100, 300 and 600 requests over one second to the three endpoints): without a reload the
page shows each endpoint's measured rps and share (0.1, 0.3, 0.6), the service's measured
total, and the predicted share `/api/predict` gives (the node is an Envoy: Envoy's prediction,
as the "predicted" heading says), beside the weight served."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from envoy.config.endpoint.v3 import load_report_pb2
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from envoy.service.load_stats.v3 import lrs_pb2

from tests.fixtures.etcd import EtcdServer
from tests.harness.serve import Serve, get_json, until
from xdscp.cache import TypeUrl
from xdscp.etcd import EtcdClient
from xdscp.load.lrs import METHOD, SEND_ALL, SERVICE

pytestmark = [pytest.mark.etcd, pytest.mark.browser]

REQUESTS = {"10.0.0.1": 100, "10.0.0.2": 300, "10.0.0.3": 600}
WEIGHTS = {"10.0.0.1": 1, "10.0.0.2": 2, "10.0.0.3": 7}
NODE = "reporter"


def _three_endpoints(value: dict[str, Any]) -> bool:
    return [len(s["endpoints"]) for s in value["services"]] == [3]


async def _subscribed(channel: grpc.aio.Channel) -> Any:
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    request = discovery_pb2.DiscoveryRequest(type_url=TypeUrl.CLUSTER, resource_names=["web"])
    request.node.id = NODE
    await call.write(request)
    await call.read()
    return call


async def _report(channel: grpc.aio.Channel) -> Any:
    """One LRS stream: started, then one report of REQUESTS over one second."""
    call = channel.stream_stream(
        f"/{SERVICE}/{METHOD}",
        request_serializer=lrs_pb2.LoadStatsRequest.SerializeToString,
        response_deserializer=lrs_pb2.LoadStatsResponse.FromString,
    )()
    first = lrs_pb2.LoadStatsRequest()
    first.node.id = NODE
    first.node.client_features.append(SEND_ALL)
    await call.write(first)
    await call.read()
    stats = load_report_pb2.ClusterStats(cluster_name="web")
    stats.load_report_interval.seconds = 1
    locality = stats.upstream_locality_stats.add()
    for address, requests in REQUESTS.items():
        endpoint = locality.upstream_endpoint_stats.add(total_successful_requests=requests)
        endpoint.address.socket_address.address = address
        endpoint.address.socket_address.port_value = 80
    await call.write(lrs_pb2.LoadStatsRequest(cluster_stats=[stats]))
    return call


async def test_dashboard_shows_measured_beside_predicted(
    etcd_server: EtcdServer, serve: Serve, browser: Any
) -> None:
    base = serve.base
    async with EtcdClient(etcd_server.config()) as client:
        for address, weight in WEIGHTS.items():
            value = {"address": address, "port": 80, "weight": weight}
            await client.put(f"/xdscp/services/web/{address}".encode(), json.dumps(value).encode())
        await until(
            f"{base}/api/services", lambda v: [len(s["endpoints"]) for s in v["services"]] == [3]
        )
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(base + "/")
    await page.wait_for_selector('[data-service="web"] [data-endpoint="10.0.0.3:80"]')
    assert (
        await page.get_attribute(
            '[data-service="web"] [data-endpoint="10.0.0.3:80"] [data-measured-share]',
            "data-measured-share",
        )
        == ""
    )  # nothing reported yet
    async with grpc.aio.insecure_channel(f"127.0.0.1:{serve.xds}") as channel:
        ads = await _subscribed(channel)
        lrs = await _report(channel)
        row = '[data-service="web"] [data-endpoint="10.0.0.3:80"]'
        await page.wait_for_selector(f'{row} [data-measured-share="0.6"]')
        # The predicted share is computed off serve's event loop, then pushed to the page.
        await page.wait_for_selector(f'{row} [data-predicted-share]:not([data-predicted-share=""])')
        _, predicted = get_json(f"{base}/api/predict?service=web")
        shares = {row["endpoint"]: row["share"] for row in predicted["split"]}
        for address, requests in REQUESTS.items():
            row = f'[data-service="web"] [data-endpoint="{address}:80"]'
            rps = await page.get_attribute(f"{row} [data-measured-rps]", "data-measured-rps")
            share = await page.get_attribute(f"{row} [data-measured-share]", "data-measured-share")
            shown = await page.get_attribute(
                f"{row} [data-predicted-share]", "data-predicted-share"
            )
            assert float(rps) == requests
            assert float(share) == requests / 1000
            assert float(shown) == shares[f"{address}:80"]
        total = await page.get_attribute('[data-service="web"] [data-load-rps]', "data-load-rps")
        assert float(total) == 1000
        by = await page.get_attribute(
            '[data-service="web"] [data-predicted-by]', "data-predicted-by"
        )
        assert by == "envoy 100.0 %"  # the reporting node is an Envoy (its user agent)
        lrs.cancel()
        ads.cancel()
    assert errors == []
