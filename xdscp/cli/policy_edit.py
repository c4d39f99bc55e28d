"""`xdscp policy set` and `policy delete`: the given flags merged into the stored policy.

`policy set SERVICE --hash-on header:x` changes `hash_on` and keeps the rest of the stored
policy (`--lb` included); a part's short flags (`--consecutive-5xx 3`) change that field of the
stored part, its JSON flag (`--outlier-detection JSON`) replaces the part; `--replace` starts
from the defaults instead (the old behaviour). What changed is said, one `field: old -> new`
per change, and a policy stored for a service with no registered endpoint gets one warning
line naming similar registered names (a typo is likely).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from xdscp.errors import ValidationError, XdscpError
from xdscp.etcd import EtcdClient
from xdscp.model import POLICY_PARTS, BalancingPolicy, HashOn
from xdscp.registry import parse_policy, policy_key, policy_value

_UNSET = "unset"
_DEFAULTS = "defaults"  # a part set with every field at its default
_CAS_ATTEMPTS = 8  # read-merge-write rounds before giving up under concurrent writers


@dataclass(frozen=True)
class PolicyPatch:
    """What the flags of one `policy set` say: top-level fields, and per part the fields to
    change (`replaced`: the part's JSON flag was given, so the part starts empty)."""

    fields: dict[str, Any] = field(default_factory=dict)
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)
    replaced: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        """True when no flag changes anything."""
        return not self.fields and not self.parts


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in changes.items():
        current = out.get(key)
        both = isinstance(current, dict) and isinstance(value, dict)
        out[key] = _merge(current, value) if both else value  # type: ignore[arg-type]
    return out


def build_policy(mapping: dict[str, Any]) -> BalancingPolicy:
    """A policy from its mapping form (`BalancingPolicy.to_mapping`); `ValidationError`."""
    values = dict(mapping)
    hash_on = tuple(HashOn.parse(str(h)) for h in values.pop("hash_on", None) or ())
    return BalancingPolicy(**values, hash_on=hash_on)


def merge(stored: BalancingPolicy | None, patch: PolicyPatch) -> BalancingPolicy:
    """`stored` (None: the defaults) with the patch applied; `ValidationError` when the
    result is not a valid policy. A stored field the given flags make invalid (`hash_on`
    after `--lb round_robin`, `slow_start` after `--lb maglev`) goes back to its default: the
    flags given win, and the change is shown like any other."""
    base = (stored or BalancingPolicy()).to_mapping()
    defaults = BalancingPolicy().to_mapping()
    given = patch.fields.keys() | patch.parts.keys()
    while True:
        out = {**base, **patch.fields}
        for part, fields in patch.parts.items():
            current = base.get(part) if part not in patch.replaced else None
            out[part] = _merge(current or {}, fields)
        try:
            return build_policy(out)
        except ValidationError as exc:
            name = exc.field.split(".")[0]
            if name in given or name not in defaults or base[name] == defaults[name]:
                raise
            base[name] = defaults[name]  # stored, made invalid by the flags given: dropped


def _flat(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted fields; a resilience part newly set or unset is one field (its mapping)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        elif value is not None:
            flat[f"{prefix}{key}"] = value
    return flat


def _part(name: str, value: dict[str, Any]) -> dict[str, Any]:
    """A part's fields that differ from that part's defaults (what was asked for)."""
    try:
        defaults = POLICY_PARTS[name]().to_mapping()
    except (TypeError, ValidationError):  # a part without defaults for every field
        return value
    return {k: v for k, v in value.items() if v != defaults.get(k)}


def _text(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def changes(before: BalancingPolicy, after: BalancingPolicy) -> list[str]:
    """`field: old -> new` for every field that differs: a part set or unset as a whole
    (`outlier_detection: unset -> {"consecutive_5xx": 3}`), a changed part field by field."""
    old, new = before.to_mapping(), after.to_mapping()
    out: list[str] = []
    for key in new:
        was, now = old.get(key), new[key]
        if was == now:
            continue
        if isinstance(was, dict) and isinstance(now, dict):
            out += changes_of(_flat(was, f"{key}."), _flat(now, f"{key}."))
        elif key in POLICY_PARTS:
            was_text = _text(_part(key, was) or _DEFAULTS) if isinstance(was, dict) else _UNSET
            now_text = _text(_part(key, now) or _DEFAULTS) if isinstance(now, dict) else _UNSET
            out.append(f"{key}: {was_text} -> {now_text}")
        else:
            out += changes_of(
                {key: was} if was is not None else {}, {key: now} if now is not None else {}
            )
    return out


def changes_of(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """`key: old -> new` for the dotted fields that differ (missing: `unset`)."""
    keys = list(dict.fromkeys([*old, *new]))
    return [
        f"{key}: {_text(old.get(key, _UNSET))} -> {_text(new.get(key, _UNSET))}"
        for key in keys
        if old.get(key, _UNSET) != new.get(key, _UNSET)
    ]


@dataclass(frozen=True)
class PolicyWrite:
    """What `policy set` did: the key written, the stored policy before and after."""

    key: str
    before: BalancingPolicy | None
    after: BalancingPolicy
    warning: str | None


async def set_merged(
    client: EtcdClient, service: str, patch: PolicyPatch, *, replace: bool,
    policies_prefix: str, services_prefix: str,
) -> PolicyWrite:  # fmt: skip
    """Read the stored policy, apply `patch` (on the defaults with `replace`), store it.

    `ValidationError` for an invalid result (nothing is written); `MissingLbError` when
    there is nothing to merge into and no `--lb`."""
    key = policy_key(service, policies_prefix)
    for _ in range(_CAS_ATTEMPTS):
        kv = await client.get(key.encode())
        stored = None if kv is None else parse_policy(kv.value)
        if (stored is None or replace) and "lb" not in patch.fields:
            raise MissingLbError(service, stored is not None)
        policy = merge(None if replace else stored, patch)
        revision = 0 if kv is None else kv.mod_revision
        if await client.put_if_revision(key.encode(), policy_value(policy), mod_revision=revision):
            warning = await _unregistered(client, service, services_prefix)
            return PolicyWrite(key, stored, policy, warning)
    raise PolicyConflictError(service, _CAS_ATTEMPTS)


class PolicyConflictError(XdscpError):
    """Other writers changed the policy between every read and write of `policy set`."""

    def __init__(self, service: str, attempts: int) -> None:
        super().__init__(
            f"{service}'s policy changed under each of {attempts} attempts to merge into it"
            " (other writers at work); nothing of this change was stored: try again"
        )


class MissingLbError(ValidationError):
    """`--lb` is needed: no stored policy to merge into, or `--replace`."""

    def __init__(self, service: str, stored: bool) -> None:
        reason = "--replace starts from the defaults" if stored else f"{service} has no policy yet"
        super().__init__("lb", f"{reason}: give --lb (e.g. --lb round_robin)")


async def _unregistered(client: EtcdClient, service: str, services_prefix: str) -> str | None:
    """One warning line when `service` has no native registration in etcd (None if it has)."""
    kvs, _ = await client.get_prefix(services_prefix.encode())
    names = {kv.key.decode(errors="replace").removeprefix(services_prefix) for kv in kvs}
    names = {name.partition("/")[0] for name in names}
    if service in names:
        return None
    similar = difflib.get_close_matches(service, sorted(names), n=3, cutoff=0.6)
    hint = f"; similar registered names: {', '.join(similar)} (a typo?)" if similar else ""
    return (
        f"warning: no endpoint of {service!r} is registered under {services_prefix}: the policy"
        f" applies once it registers{hint}"
    )


async def delete_policy(client: EtcdClient, service: str, policies_prefix: str) -> str | None:
    """Delete `service`'s stored policy; the key deleted, or None when there was none."""
    key = policy_key(service, policies_prefix)
    return key if await client.delete(key.encode()) else None
