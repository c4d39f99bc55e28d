"""The service registry in etcd, and the client that writes it.

The schema: where the registry lives (`RegistryLayout`, grpc-go naming targets), the key and
value formats (xdscp's native JSON, grpc-go's naming `endpoints.Manager` values, balancing
policies), the byte-level checks every key and value passes first, and `RegistryState`, the
I/O-free reading of the registry's changes into services. The client: `register` (a key
owned by its lease, watched while held), `deregister`, and the policy keys (`set_policy`,
`get_policy`, `policy_key`) and the route keys (`set_routes`, `get_routes`, `delete_routes`,
`routes_key`).

It sits after `etcd` and `model`, before `sources`: the etcd source reads what it defines.
"""

from xdscp.registry.codec import MAX_VALUE_BYTES, decode_key, display_key, load_object
from xdscp.registry.layout import (
    DEFAULT_POLICIES_PREFIX,
    DEFAULT_ROUTES_PREFIX,
    DEFAULT_SERVICES_PREFIX,
    GrpcGoTarget,
    RegistryLayout,
)
from xdscp.registry.registration import (
    Format,
    Placement,
    Registered,
    build_registration,
    delete_routes,
    deregister,
    get_policy,
    get_routes,
    policy_key,
    register,
    report_load,
    routes_key,
    set_policy,
    set_routes,
)
from xdscp.registry.schema import (
    REJECTION_REASONS,
    Registration,
    parse_policy,
    parse_routes,
    policy_value,
    routes_value,
    split_host_port,
)
from xdscp.registry.state import RegistryState, Rejection

__all__ = [
    "DEFAULT_POLICIES_PREFIX",
    "DEFAULT_ROUTES_PREFIX",
    "DEFAULT_SERVICES_PREFIX",
    "MAX_VALUE_BYTES",
    "REJECTION_REASONS",
    "Format",
    "GrpcGoTarget",
    "Placement",
    "Registered",
    "Registration",
    "RegistryLayout",
    "RegistryState",
    "Rejection",
    "build_registration",
    "decode_key",
    "delete_routes",
    "deregister",
    "display_key",
    "get_policy",
    "get_routes",
    "load_object",
    "parse_policy",
    "parse_routes",
    "policy_key",
    "policy_value",
    "register",
    "report_load",
    "routes_key",
    "routes_value",
    "set_policy",
    "set_routes",
    "split_host_port",
]
