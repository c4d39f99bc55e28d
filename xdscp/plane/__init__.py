"""The plane: sources → `Pipeline` (merge, health, translate) → cache → server, plus admin.

`build_plane(config)` builds the plane `xdscp serve` runs (the one composition root);
`ControlPlane` is its runtime; `ServeOptions` and `XdsTls` (defined with the configuration,
`xdscp.config`) say where it listens and how it translates.
"""

from xdscp.config import ServeOptions, ServerConfig, XdsTls
from xdscp.plane.build import build_plane
from xdscp.plane.control import MAX_REQUEST_BYTES, SERVER_OPTIONS, ControlPlane
from xdscp.plane.pipeline import Pipeline

__all__ = [
    "MAX_REQUEST_BYTES",
    "SERVER_OPTIONS",
    "ControlPlane",
    "Pipeline",
    "ServeOptions",
    "ServerConfig",
    "XdsTls",
    "build_plane",
]
