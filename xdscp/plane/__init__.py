"""The plane: composes sources → model → translate → cache → server, plus the admin endpoint.

`ControlPlane` is the running pipeline `xdscp serve` starts; `ServeOptions` and `XdsTls`
(defined with the configuration, `xdscp.config`) say where it listens and how it translates.
"""

from xdscp.config import ServeOptions, XdsTls
from xdscp.plane.control import MAX_REQUEST_BYTES, SERVER_OPTIONS, ControlPlane

__all__ = ["MAX_REQUEST_BYTES", "SERVER_OPTIONS", "ControlPlane", "ServeOptions", "XdsTls"]
