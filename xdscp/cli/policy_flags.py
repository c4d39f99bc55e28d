"""`xdscp policy set` flags for the resilience policies, and their errors named by flag.

Each part of a policy has a JSON flag taking the whole part (`--outlier-detection JSON`,
`--health-check-json JSON`, ...) and short flags for the common fields; a short flag
overrides the same field of the JSON. Durations are seconds or `250ms` / `10s` / `1m`.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from xdscp.cli.policy_edit import PolicyPatch, merge
from xdscp.errors import ValidationError
from xdscp.model import HealthCheckKind

F = TypeVar("F", bound=Callable[..., Any])

# flag dest → (policy part, field inside it); a part of None is a top-level field.
SHORT_FLAGS: dict[str, tuple[str | None, str]] = {
    "consecutive_5xx": ("outlier_detection", "consecutive_5xx"),
    "consecutive_gateway_failure": ("outlier_detection", "consecutive_gateway_failure"),
    "ejection_interval": ("outlier_detection", "interval"),
    "base_ejection_time": ("outlier_detection", "base_ejection_time"),
    "max_ejection_percent": ("outlier_detection", "max_ejection_percent"),
    "always_eject_one_host": ("outlier_detection", "always_eject_one_host"),
    "health_interval": ("health_check", "interval"),
    "health_timeout": ("health_check", "timeout"),
    "healthy_threshold": ("health_check", "healthy_threshold"),
    "unhealthy_threshold": ("health_check", "unhealthy_threshold"),
    "health_by_control_plane": ("health_check", "control_plane"),
    "slow_start_window": ("slow_start", "window"),
    "slow_start_aggression": ("slow_start", "aggression"),
    "slow_start_min_weight_percent": ("slow_start", "min_weight_percent"),
    "max_connections": ("circuit_breakers", "max_connections"),
    "max_pending_requests": ("circuit_breakers", "max_pending_requests"),
    "max_requests": ("circuit_breakers", "max_requests"),
    "max_retries": ("circuit_breakers", "max_retries"),
    "retry_on": ("retries", "retry_on"),
    "num_retries": ("retries", "num_retries"),
    "per_try_timeout": ("retries", "per_try_timeout"),
    "retry_backoff_base": ("retries", "backoff_base"),
    "retry_backoff_max": ("retries", "backoff_max"),
    "blackout_period": ("client_side_wrr", "blackout_period"),
    "weight_expiration_period": ("client_side_wrr", "weight_expiration_period"),
    "weight_update_period": ("client_side_wrr", "weight_update_period"),
    "error_utilization_penalty": ("client_side_wrr", "error_utilization_penalty"),
    "utilization_metrics": ("client_side_wrr", "metric_names_for_computing_utilization"),
    "oob_load_report": ("client_side_wrr", "enable_oob_load_report"),
    "oob_reporting_period": ("client_side_wrr", "oob_reporting_period"),
    "timeout": (None, "timeout"),
    "hash_balance_factor": (None, "hash_balance_factor"),
    "adaptive_min_push_interval": ("adaptive_weights", "min_push_interval"),
    "adaptive_smoothing": ("adaptive_weights", "smoothing"),
    "adaptive_max_step": ("adaptive_weights", "max_step"),
    "adaptive_floor": ("adaptive_weights", "floor"),
    "adaptive_hysteresis": ("adaptive_weights", "hysteresis"),
    "adaptive_stale_after": ("adaptive_weights", "stale_after"),
    "adaptive_error_penalty": ("adaptive_weights", "error_penalty"),
}
JSON_FLAGS = {
    "outlier_detection": "--outlier-detection",
    "health_check": "--health-check-json",
    "slow_start": "--slow-start",
    "circuit_breakers": "--circuit-breakers",
    "retries": "--retries",
    "client_side_wrr": "--client-side-wrr",
    "adaptive_weights": "--adaptive-weights-json",
}
_SPECIAL = {
    "outlier_detection.failure_percentage": "--failure-percentage",
    "health_check.kind": "--health-check",
}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def resilience_options(func: F) -> F:
    """Add the resilience flags to a click command: each part's JSON flag, then its short
    flags, part by part."""
    options = [
        *(click.option(flag, part, metavar="JSON", help=f"the whole `{part}` part as JSON")
          for part, flag in JSON_FLAGS.items()),
        *_outlier_options(),
        *_health_options(),
        *_slow_start_options(),
        *_limit_and_retry_options(),
        *_client_side_wrr_options(),
        *_adaptive_options(),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


Decorator = Callable[[Any], Any]


def _duration(flag: str, help_text: str | None = None) -> Decorator:
    """A flag taking seconds or `250ms` / `10s` / `1m`."""
    return click.option(flag, type=click.STRING, metavar="DURATION", help=help_text)


def _outlier_options() -> list[Decorator]:
    return [
        click.option("--consecutive-5xx", "consecutive_5xx", type=int,
                     help="eject an endpoint after N 5xx in a row (Envoy; 0 = off)"),
        click.option("--consecutive-gateway-failure", type=int),
        click.option("--failure-percentage", type=int, metavar="PERCENT",
                     help="eject endpoints failing at least PERCENT % (Envoy and gRPC)"),
        _duration("--ejection-interval"),
        _duration("--base-ejection-time"),
        click.option("--max-ejection-percent", type=int),
        click.option("--always-eject-one-host/--no-always-eject-one-host", default=None,
                     help="Envoy may eject one host whatever --max-ejection-percent allows"),
    ]  # fmt: skip


def _health_options() -> list[Decorator]:
    return [
        click.option("--health-check", "health_check_kind", metavar="KIND[:ARG]",
                     help="active health check: http[:PATH], grpc[:SERVICE] or tcp"),
        _duration("--health-interval"),
        _duration("--health-timeout"),
        click.option("--healthy-threshold", type=int),
        click.option("--unhealthy-threshold", type=int),
        click.option("--health-by-control-plane/--no-health-by-control-plane", default=None,
                     help="xdscp checks too and marks failing endpoints in EDS (for gRPC)"),
    ]  # fmt: skip


def _slow_start_options() -> list[Decorator]:
    return [
        _duration("--slow-start-window"),
        click.option("--slow-start-aggression", type=float),
        click.option("--slow-start-min-weight-percent", type=float),
    ]


def _limit_and_retry_options() -> list[Decorator]:
    """Circuit breakers, retries, the route timeout and the hash balance factor."""
    return [
        click.option("--max-connections", type=int),
        click.option("--max-pending-requests", type=int),
        click.option("--max-requests", type=int),
        click.option("--max-retries", type=int),
        click.option("--retry-on", metavar="NAMES", help="comma-separated, e.g. 5xx,unavailable"),
        click.option("--num-retries", type=int),
        _duration("--per-try-timeout"),
        _duration("--retry-backoff-base"),
        _duration("--retry-backoff-max"),
        _duration("--timeout", "route timeout (0 = none; Envoy's default is 15s)"),
        click.option("--hash-balance-factor", type=int,
                     help="bounded load for ring_hash / maglev, >= 100 (150 = 1.5 x average)"),
    ]  # fmt: skip


def _client_side_wrr_options() -> list[Decorator]:
    """The settings of client_side_weighted_round_robin (A58's names)."""
    return [
        _duration("--blackout-period", "a new endpoint's weight counts after reports for this"
                  " long (client_side_weighted_round_robin; default 10s)"),
        _duration("--weight-expiration-period", "a weight without reports for this long is"
                  " dropped (default 3m)"),
        _duration("--weight-update-period", "weights recomputed this often (>= 100ms; default 1s)"),
        click.option("--error-utilization-penalty", type=float,
                     help="utilization added per error/QPS (default 1.0)"),
        click.option("--utilization-metrics", metavar="NAMES",
                     help="Envoy: ORCA metrics for the utilization when application_utilization"
                     " is unset, comma-separated (cpu_utilization, named_metrics.KEY, ...)"),
        click.option("--oob-load-report/--no-oob-load-report", default=None,
                     help="read the backends' OpenRcaService stream instead of each response"),
        _duration("--oob-reporting-period", "the out-of-band report interval (default 10s)"),
    ]  # fmt: skip


def _adaptive_options() -> list[Decorator]:
    """`--adaptive-weights` (on, with defaults), `--no-adaptive-weights` (off), and short
    flags for each setting (any of them turns the part on)."""
    return [
        click.option("--adaptive-weights/--no-adaptive-weights", "adaptive_on", default=None,
                     help="xdscp computes the endpoint weights from their load"),
        _duration("--adaptive-min-push-interval", "least time between two pushed weightings"),
        click.option("--adaptive-smoothing", type=float, help="newest estimate's share, (0, 1]"),
        click.option("--adaptive-max-step", type=float, help="most a weight moves per push (x)"),
        click.option("--adaptive-floor", type=float, help="least weight, fraction of the mean"),
        click.option("--adaptive-hysteresis", type=float, help="push only moves above it"),
        _duration("--adaptive-stale-after", "silent this long: back to the registered weight"),
        click.option("--adaptive-error-penalty", type=float, help="gRFC A58's error penalty"),
    ]  # fmt: skip


def _json_part(part: str, text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint=JSON_FLAGS[part]) from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint=JSON_FLAGS[part])
    return value


def _health_check(text: str) -> dict[str, Any]:
    kind, _, arg = text.partition(":")
    kinds = [k.value for k in HealthCheckKind]
    if kind.strip().lower() not in kinds:
        close = difflib.get_close_matches(kind.strip().lower(), kinds, n=1)
        hint = f", did you mean {close[0]!r}?" if close else ""
        message = f"unknown health check kind {kind.strip()!r}: expected one of {', '.join(kinds)}"
        raise click.BadParameter(message + hint, param_hint="--health-check")
    check: dict[str, Any] = {"kind": kind.strip().lower()}
    if arg and check["kind"] == "http":
        check["path"] = arg
    elif arg and check["kind"] == "grpc":
        check["service_name"] = arg
    elif arg:
        raise click.BadParameter(f"{kind} takes no argument", param_hint="--health-check")
    return check


def resilience_fields(params: dict[str, Any]) -> dict[str, Any]:
    """The resilience fields of `BalancingPolicy` from the flags (removed from `params`)."""
    parts: dict[str, dict[str, Any]] = {}
    for part in JSON_FLAGS:
        text = params.pop(part, None)
        if text is not None:
            parts[part] = _json_part(part, text)
    check = params.pop("health_check_kind", None)
    if check is not None:
        parts.setdefault("health_check", {}).update(_health_check(check))
    threshold = params.pop("failure_percentage", None)
    if threshold is not None:
        od = parts.setdefault("outlier_detection", {})
        od["failure_percentage"] = {**od.get("failure_percentage", {}), "threshold": threshold}
    out: dict[str, Any] = {}
    adaptive = params.pop("adaptive_on", None)
    if adaptive is True:
        parts.setdefault("adaptive_weights", {})
    elif adaptive is False:
        out["adaptive_weights"] = None
    for dest, (where, name) in SHORT_FLAGS.items():
        value = params.pop(dest, None)
        if value is None:
            continue
        if where is None:
            out[name] = value
        else:
            parts.setdefault(where, {})[name] = value
    return {**parts, **out}


def policy_patch(params: dict[str, Any]) -> PolicyPatch:
    """The policy fields the `policy set` flags give (removed from `params`), checked as far
    as they can be without the stored policy: alone on the defaults when `--lb` is given."""
    replaced = frozenset(part for part in JSON_FLAGS if params.get(part) is not None)
    resilience = resilience_fields(params)
    hash_on = params.pop("hash_on", ())
    fields = {k: v for k, v in params.items() if v is not None}
    fields.update({k: v for k, v in resilience.items() if k not in JSON_FLAGS or v is None})
    if hash_on:
        fields["hash_on"] = list(hash_on)
    parts = {k: v for k, v in resilience.items() if k in JSON_FLAGS and v is not None}
    patch = PolicyPatch(fields, parts, replaced)
    if "lb" in fields:
        checked(lambda: merge(None, patch))
    return patch


T = TypeVar("T")


def checked(build: Callable[[], T]) -> T:
    """`build()`, a policy error turned into a click error naming the flag."""
    try:
        return build()
    except ValidationError as exc:
        raise flag_error(exc) from None
    except ValueError as exc:  # an enum the model converts (hash_function)
        raise click.BadParameter(str(exc)) from None


def flag_for(field: str) -> str:
    """The flag that sets a policy field (`retries.num_retries` → `--num-retries`)."""
    if field == "adaptive_weights":
        return "--adaptive-weights"
    for prefix, flag in _SPECIAL.items():
        if field.startswith(prefix):
            return flag
    part, _, name = field.partition(".")
    for dest, where in SHORT_FLAGS.items():
        if where == (part, name.split(".")[0]) or where == (None, part):
            return _flag(dest)
    return JSON_FLAGS.get(part, _flag(part))


def flag_error(exc: ValidationError) -> click.BadParameter:
    """A policy error as a click error naming the flag and the field."""
    return click.BadParameter(f"{exc.field}: {exc.message}", param_hint=flag_for(exc.field))
