"""The table of resource types: one row per type xdscp serves, and what is derived from it."""

from __future__ import annotations

from xdscp.cache import (
    FULL_STATE,
    RESOURCE_TYPES,
    TYPE_ORDER,
    WILDCARD_TYPES,
    TypeUrl,
    short_name,
)
from xdscp.server.metrics import short_type


def test_every_type_has_one_row_named_after_its_message() -> None:
    """Each served type has a row whose short name is its URL's message name."""
    assert set(RESOURCE_TYPES) == set(TypeUrl)
    for url, row in RESOURCE_TYPES.items():
        assert row.url is url
        assert short_name(url) == short_type(url) == row.short_name == url.rsplit(".", 1)[-1]
    assert [RESOURCE_TYPES[t].api for t in TypeUrl] == ["CDS", "EDS", "LDS", "RDS"]


def test_order_sends_clusters_before_endpoints_and_listeners_before_routes() -> None:
    """The order a client must receive types in: CDS, EDS, LDS, RDS."""
    order = sorted(TypeUrl, key=TYPE_ORDER.__getitem__)
    assert order == [TypeUrl.CLUSTER, TypeUrl.ENDPOINT, TypeUrl.LISTENER, TypeUrl.ROUTE]


def test_only_listener_and_cluster_are_wildcard_and_full_state() -> None:
    """The protocol gives Listener and Cluster a wildcard, and their SotW responses list all."""
    assert WILDCARD_TYPES == FULL_STATE == {TypeUrl.CLUSTER, TypeUrl.LISTENER}


def test_an_unserved_type_is_named_by_its_last_part_and_counted_as_unknown() -> None:
    """A type xdscp does not serve: its URL's last dotted part; metrics label it `unknown`."""
    url = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig"
    assert (short_name(url), short_type(url)) == ("TypedExtensionConfig", "unknown")
