"""One checker among the replicas: a leader key created with a lease, in a transaction.

`Election.lead(work)` campaigns forever: it grants a lease, creates the leader key with it
only if the key is absent, and on success runs `work()` while it keeps the lease alive. A
replica that loses waits (a watch) until the key is deleted — the leader stopped and revoked
its lease, or died and its lease expired (at most the TTL later) — then campaigns again.
Leadership ends when the lease is lost (`LeaseExpiredError`) or the key is deleted or
overwritten; `work()` is then cancelled. On the way out (cancelled) the leader revokes its
lease, so another replica takes over at once instead of after the TTL.

A leader cut off from etcd keeps checking until it learns its lease expired; it cannot
write a verdict meanwhile, so the only cost is a second replica's probes at the backends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from xdscp.errors import EtcdError, EtcdUnavailableError
from xdscp.etcd import EtcdClient, LeaseExpiredError, WatchEventType, keep_alive, watch_prefix
from xdscp.retry import Backoff

log = structlog.get_logger(__name__)


class Election:
    """Campaigns for `key` as `identity`, with a lease of `ttl` seconds."""

    def __init__(
        self, client: EtcdClient, key: bytes, identity: str, ttl: int, *, role: str = "checker"
    ) -> None:
        """`role`: what the leader does (a field of every log event: `checker`, `publisher`)."""
        if ttl < 1:
            raise ValueError(f"the lease TTL must be >= 1 second, got {ttl}")
        self._client, self._key, self._identity, self._ttl = client, key, identity, ttl
        self._log = log.bind(role=role)
        self.leading = False
        self.leader: str | None = None  # the holder last seen (ours when leading)

    async def lead(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Campaign, and run `work()` whenever elected, until cancelled."""
        backoff = Backoff(0.1, float(self._ttl))
        while True:
            try:
                lease, revision = await self._campaign()
                if lease is None:
                    await self._wait_for_vacancy(revision)
                else:
                    await self._hold(lease, work)
                backoff.reset()
            except EtcdError as exc:
                self._log.warning("health_election_failed", error=str(exc))
                await asyncio.sleep(backoff.next_delay())

    async def _campaign(self) -> tuple[int | None, int]:
        """(our lease, 0) when elected, else (None, the holder's revision; 0 when none)."""
        lease = await self._client.lease_grant(self._ttl)
        try:
            won, _ = await self._client.put_if_absent(
                self._key, self._identity.encode(), lease=lease
            )
        except EtcdUnavailableError:  # the transaction may have happened: look
            held = await self._client.get(self._key)
            won = held is not None and held.lease == lease
        if won:
            return lease, 0
        with contextlib.suppress(EtcdError):
            await self._client.lease_revoke(lease)
        held = await self._client.get(self._key)
        self.leader = None if held is None else held.value.decode(errors="replace")
        # vacated meanwhile (revision 0): campaign again at once
        return None, 0 if held is None else held.mod_revision

    async def _wait_for_vacancy(self, revision: int) -> None:
        """Return once the leader key is deleted after `revision` (0: at once)."""
        if revision == 0:
            return
        async for batch in watch_prefix(self._client, self._key, revision + 1):
            if any(e.key == self._key and e.kind is WatchEventType.DELETE for e in batch.events):
                self.leader = None
                return

    async def _hold(self, lease: int, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `work` while the lease lives and the key is ours; revoke the lease at the end."""
        self.leading, self.leader = True, self._identity
        self._log.info("health_leader_elected", identity=self._identity, lease=f"{lease:x}")
        tasks = [
            asyncio.create_task(keep_alive(self._client, lease, self._ttl)),
            asyncio.create_task(self._watch_key(lease)),
            asyncio.create_task(work()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                error = task.exception()
                if error is not None and not isinstance(error, LeaseExpiredError | EtcdError):
                    raise error
            self._log.warning("health_leadership_lost", identity=self._identity)
        finally:
            self.leading, self.leader = False, None
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            with contextlib.suppress(EtcdError, TimeoutError):
                async with asyncio.timeout(2.0):
                    await self._client.lease_revoke(lease)

    async def _watch_key(self, lease: int) -> None:
        """Return when the leader key is no longer ours (deleted, or rewritten by an
        operator); an etcd outage meanwhile is waited out (the keep-alive decides)."""
        backoff = Backoff(0.1, float(self._ttl))
        while True:
            try:
                held = await self._client.get(self._key)
                if held is None or held.lease != lease:
                    return
                async for batch in watch_prefix(self._client, self._key, held.mod_revision + 1):
                    if any(e.key == self._key for e in batch.events):
                        return
            except EtcdError as exc:
                self._log.warning("health_leader_watch_failed", error=str(exc))
                await asyncio.sleep(backoff.next_delay())
