"""A registration owns its key: created only if absent, held by its lease, watched.

The rules, the same for xdscp's native format and grpc-go's `naming/endpoints` format:

- The key is created in a transaction that requires it to be absent (`create_revision ==
  0`): a key held by another lease — another registrar — or by none — written by hand — is
  never overwritten (`KeyHeldError`, naming the holder).
- It is rewritten (the drain) or removed only while attached to our lease (`put_if_leased`;
  revoking our lease deletes only our lease's keys).
- It is watched while registered. Deleted while our lease lives: someone removed it on
  purpose (`xdscp deregister`, a delete), the registration ends (`KeyRemovedError`) and is
  never written back. Attached to another lease: taken (`KeyHeldError`), the registration
  ends. Our lease gone (an etcd outage longer than the TTL, a revoke): the key went with
  it, and is created again under a new lease — if still absent.
"""

from __future__ import annotations

import asyncio
import contextlib
from enum import Enum

import structlog

from xdscp.errors import (
    EtcdAuthError,
    EtcdError,
    EtcdUnavailableError,
    KeyHeldError,
    KeyRemovedError,
    RegistrationError,
)
from xdscp.etcd import EtcdClient, LeaseExpiredError, keep_alive, watch_prefix
from xdscp.retry import Backoff

log = structlog.get_logger("xdscp.registration")
FORGET_TIMEOUT = 2.0  # seconds spent revoking a lease that holds nothing, at most


class Verdict(Enum):
    """What the key's state says about a registration."""

    HELD = "held"  # attached to our lease
    TAKEN = "taken"  # attached to another lease, or to none
    REMOVED = "removed"  # absent while our lease lives: deleted on purpose
    LEASE_LOST = "lease_lost"  # absent with our lease: it went with the lease


def judge(holder: int | None, ours: int, *, lease_alive: bool) -> Verdict:
    """The verdict (I/O-free) for a key attached to `holder` (None: absent; 0: a key with
    no lease) when our lease is `ours`; `lease_alive` matters only when the key is absent."""
    if holder is None:
        return Verdict.REMOVED if lease_alive else Verdict.LEASE_LOST
    return Verdict.HELD if holder == ours else Verdict.TAKEN


async def held_error(client: EtcdClient, key: str, holder: int) -> KeyHeldError:
    """The error for `key` held by `holder` (0: no lease), with that lease's seconds left."""
    ttl_left = -1
    if holder:
        with contextlib.suppress(EtcdError):
            ttl_left = await client.lease_time_to_live(holder)
    if not holder:
        message = "already exists without a lease (written by hand?)"
    elif ttl_left >= 0:
        message = f"already registered under lease {holder:x} ({ttl_left} s left)"
    else:
        message = f"already registered under lease {holder:x}"
    return KeyHeldError(key, holder, ttl_left, message)


async def _create(client: EtcdClient, key: str, value: bytes, lease: int) -> bool:
    """True when `key` is attached to `lease` now (created, maybe by an earlier attempt
    whose answer was lost); False when it is absent (try again); KeyHeldError otherwise."""
    try:
        created, _ = await client.put_if_absent(key.encode(), value, lease=lease)
    except EtcdUnavailableError:
        created = False  # the transaction may have been applied: the read tells
    if created:
        return True
    kv = await client.get(key.encode())
    if kv is None:
        return False
    if kv.lease == lease:
        return True
    raise await held_error(client, key, kv.lease)


async def _forget(client: EtcdClient, lease: int) -> None:
    """Revoke a lease that holds nothing (best effort, bounded: etcd may be unreachable)."""
    with contextlib.suppress(EtcdError, TimeoutError):
        async with asyncio.timeout(FORGET_TIMEOUT):
            await client.lease_revoke(lease)


async def claim(client: EtcdClient, key: str, value: bytes, ttl: int) -> int:
    """Create `key` under a new lease of `ttl` seconds and return the lease, retrying with
    backoff while etcd cannot be reached (`registration_retry`).

    Raises KeyHeldError when the key exists, EtcdAuthError (no retry fixes it), and
    CancelledError — after revoking a lease granted meanwhile, so nothing is left behind.
    """
    backoff = Backoff(0.1, client.config.max_backoff)
    lease = 0
    try:
        while True:
            try:
                lease = lease or await client.lease_grant(ttl)
                if await _create(client, key, value, lease):
                    return lease
            except LeaseExpiredError:
                lease = 0  # expired during a long outage: grant another
            except EtcdAuthError:
                raise
            except EtcdError as exc:
                log.warning("registration_retry", key=key, error=str(exc))
            await asyncio.sleep(backoff.next_delay())
    except BaseException:
        if lease:
            await _forget(client, lease)
        raise


async def guard(client: EtcdClient, key: str, lease: int) -> tuple[Verdict, int]:
    """Watch `key` until it is no longer attached to `lease`; returns the verdict and the
    key's holder (0: none). An etcd outage meanwhile is waited out (the keep-alive decides
    whether the lease survived it)."""
    backoff = Backoff(0.1, client.config.max_backoff)
    raw = key.encode()
    while True:
        try:
            kv = await client.get(raw)
            holder = None if kv is None else kv.lease
            if kv is None or holder != lease:  # (spelled out for mypy)
                alive = holder is not None or await client.lease_time_to_live(lease) >= 0
                return judge(holder, lease, lease_alive=alive), holder or 0
            async for batch in watch_prefix(client, raw, kv.mod_revision + 1):
                if any(event.key == raw for event in batch.events):
                    break  # read it again and judge
            backoff.reset()
        except EtcdError as exc:
            log.debug("registration_watch_failed", key=key, error=str(exc))
            await asyncio.sleep(backoff.next_delay())


async def watch_over(client: EtcdClient, key: str, lease: int, ttl: int) -> tuple[Verdict, int]:
    """Keep `lease` alive and guard `key` until the key is no longer ours or the lease is
    lost (`LEASE_LOST`); returns the verdict and the key's holder."""
    keeper = asyncio.create_task(keep_alive(client, lease, ttl))
    guarding = asyncio.create_task(guard(client, key, lease))
    try:
        await asyncio.wait([keeper, guarding], return_when=asyncio.FIRST_COMPLETED)
    finally:
        keeper.cancel()
        guarding.cancel()
        await asyncio.wait([keeper, guarding])
    if guarding.done() and not guarding.cancelled():
        return guarding.result()  # its verdict looked at the lease too
    error = keeper.exception()
    if isinstance(error, LeaseExpiredError):
        return Verdict.LEASE_LOST, 0
    raise error or RuntimeError("the lease keep-alive ended")


def ended(key: str, lease: int, verdict: Verdict, holder: int) -> RegistrationError | None:
    """The end of a registration a verdict means (None: it goes on)."""
    if verdict is Verdict.REMOVED:
        message = f"deleted by someone else while lease {lease:x} lived (xdscp deregister?)"
        return KeyRemovedError(key, message)
    if verdict is Verdict.TAKEN:
        whose = f"lease {holder:x}" if holder else "no lease (written by hand?)"
        return KeyHeldError(key, holder, -1, f"overwritten by someone else: now held by {whose}")
    return None
