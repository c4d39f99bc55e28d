"""`serve`'s configuration: a YAML file, the environment and flags, checked field by field.

`raw` keeps each value with where it came from; `load` builds the typed `ServerConfig`;
`options` holds the `ServeOptions` the plane runs with (the plane imports them, not the
reverse).
"""

from xdscp.config.load import (
    SCHEMA,
    ConfigServicesSource,
    EtcdSource,
    ServerConfig,
    load_config,
    split_address,
)
from xdscp.config.options import ServeOptions, XdsTls

__all__ = [
    "SCHEMA",
    "ConfigServicesSource",
    "EtcdSource",
    "ServeOptions",
    "ServerConfig",
    "XdsTls",
    "load_config",
    "split_address",
]
