"""Demo pieces: backends that say who they are, for the demo, the compose stack and tests."""

from xdscp.demo.backend import Backend, BackendConfig
from xdscp.demo.run import BACKENDS, DemoOptions, run
from xdscp.demo.stack import StackOptions

__all__ = ["BACKENDS", "Backend", "BackendConfig", "DemoOptions", "StackOptions", "run"]
