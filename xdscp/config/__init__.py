"""`serve`'s configuration: a YAML file, the environment and flags, checked field by field.

`raw` keeps each value with where it came from; `sections` checks each section of the
file (`SCHEMA`); `load` assembles the typed `ServerConfig`;
`options` holds the `ServeOptions` the plane runs with (the plane imports them, not the
reverse).
"""

from xdscp.config.load import ConfigServicesSource, ServerConfig, load_config
from xdscp.config.options import ServeOptions, XdsTls
from xdscp.config.sections import SCHEMA, EtcdRegistryConfig

__all__ = [
    "SCHEMA",
    "ConfigServicesSource",
    "EtcdRegistryConfig",
    "ServeOptions",
    "ServerConfig",
    "XdsTls",
    "load_config",
]
