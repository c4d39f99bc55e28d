"""The admin HTTP endpoint: readiness, metrics, per-node status, the JSON API and dashboard."""

from xdscp.admin.events import NODES, SERVICES, SOURCES, ChangeFeed
from xdscp.admin.http import AdminServer, AdminView
from xdscp.admin.query import PredictQuery, parse_predict_query

__all__ = [
    "NODES",
    "SERVICES",
    "SOURCES",
    "AdminServer",
    "AdminView",
    "ChangeFeed",
    "PredictQuery",
    "parse_predict_query",
]
