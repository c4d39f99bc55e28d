"""The admin HTTP endpoint: readiness, per-node status and Prometheus metrics."""

from xdscp.admin.http import AdminServer

__all__ = ["AdminServer"]
