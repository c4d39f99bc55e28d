"""Child processes xdscp starts for the demo, tests and benches: Envoy, etcd, backends."""

from xdscp.procs.binaries import find_binary
from xdscp.procs.envoy import EnvoyProcess
from xdscp.procs.etcd import EtcdServer, find_etcd, free_port
from xdscp.procs.stop import terminate

__all__ = ["EnvoyProcess", "EtcdServer", "find_binary", "find_etcd", "free_port", "terminate"]
