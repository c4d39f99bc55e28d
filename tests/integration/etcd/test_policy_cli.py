"""`xdscp policy set` merges the flags given into the stored policy; `--replace`, `delete`,
and one warning line for a service that has no registered endpoint."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from click.testing import CliRunner, Result

from tests.fixtures.etcd import EtcdServer
from xdscp.cli import main
from xdscp.cli.policy_edit import PolicyPatch, set_merged
from xdscp.etcd import EtcdClient, EtcdConfig
from xdscp.model import LbPolicy
from xdscp.registry import DEFAULT_POLICIES_PREFIX, DEFAULT_SERVICES_PREFIX, get_policy


def _policy(url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["policy", *args, "--etcd", url])


def _stored(url: str, service: str) -> dict[str, Any]:
    shown = _policy(url, "show", service)
    assert shown.exit_code == 0, shown.output
    return dict(json.loads(shown.stdout))


def test_set_merges_the_flags_into_the_stored_policy(etcd_server: EtcdServer) -> None:
    """A later `--hash-balance-factor` keeps the stored `--lb maglev --hash-on header:x-user`
    (it needed --lb and dropped `hash_on`); a part's short flags change that part only."""
    url = etcd_server.url
    first = _policy(url, "set", "api", "--lb", "maglev", "--hash-on", "header:x-user")
    assert first.exit_code == 0, first.output
    assert "set (from the defaults): lb: round_robin -> maglev; hash_on: [] -> " in first.stdout
    second = _policy(url, "set", "api", "--hash-balance-factor", "150")
    assert second.exit_code == 0, second.output
    assert second.stdout.splitlines()[1] == "changed: hash_balance_factor: unset -> 150"
    policy = _stored(url, "api")["policy"]
    assert (policy["lb"], policy["hash_on"], policy["hash_balance_factor"]) == (
        "maglev", ["header:x-user"], 150,
    )  # fmt: skip
    assert _policy(url, "set", "api", "--lb", "ring_hash").exit_code == 0
    assert _stored(url, "api")["policy"]["hash_on"] == ["header:x-user"]
    assert _policy(url, "set", "api", "--consecutive-5xx", "3").exit_code == 0
    assert _policy(url, "set", "api", "--max-ejection-percent", "50").exit_code == 0
    outlier = _stored(url, "api")["policy"]["outlier_detection"]
    assert (outlier["consecutive_5xx"], outlier["max_ejection_percent"]) == (3, 50)
    again = _policy(url, "set", "api", "--max-ejection-percent", "50")
    assert again.stdout.splitlines()[1] == "unchanged"


def test_replace_starts_from_the_defaults(etcd_server: EtcdServer) -> None:
    url = etcd_server.url
    assert _policy(url, "set", "api", "--lb", "maglev", "--hash-on", "header:x").exit_code == 0
    needs_lb = _policy(url, "set", "api", "--replace", "--timeout", "3s")
    assert needs_lb.exit_code == 2
    assert "--replace starts from the defaults: give --lb" in needs_lb.output
    replaced = _policy(url, "set", "api", "--replace", "--lb", "round_robin")
    assert replaced.exit_code == 0, replaced.output
    assert "lb: maglev -> round_robin" in replaced.stdout
    assert _stored(url, "api")["policy"]["hash_on"] == []


def test_a_first_policy_needs_lb(etcd_server: EtcdServer) -> None:
    result = _policy(etcd_server.url, "set", "api", "--timeout", "3s")
    assert result.exit_code == 2
    assert "api has no policy yet: give --lb (e.g. --lb round_robin)" in result.output
    assert _stored(etcd_server.url, "api")["stored"] is False


def test_delete(etcd_server: EtcdServer) -> None:
    """`policy delete` removes the stored policy; deleting none is an error."""
    url = etcd_server.url
    assert _policy(url, "set", "api", "--lb", "maglev").exit_code == 0
    deleted = _policy(url, "delete", "api")
    assert deleted.exit_code == 0, deleted.output
    assert deleted.stdout == "deleted /xdscp/policies/api: api has the default policy again\n"
    assert _stored(url, "api")["stored"] is False
    missing = _policy(url, "delete", "api")
    assert missing.exit_code == 1
    assert missing.output == "Error: api has no stored policy\n"


def test_a_policy_for_an_unregistered_service_warns_once(etcd_server: EtcdServer) -> None:
    """Stored, with one warning line naming the similar registered name (a typo)."""

    async def seed() -> None:
        async with EtcdClient(etcd_server.config()) as client:
            await client.put(b"/xdscp/services/web/a", b'{"address":"10.0.0.1","port":80}')

    asyncio.run(seed())
    typo = _policy(etcd_server.url, "set", "wbe", "--lb", "maglev")
    assert typo.exit_code == 0, typo.output
    assert typo.stderr == (
        "warning: no endpoint of 'wbe' is registered under /xdscp/services/: the policy applies"
        " once it registers; similar registered names: web (a typo?)\n"
    )
    assert _stored(etcd_server.url, "wbe")["stored"] is True
    known = _policy(etcd_server.url, "set", "web", "--lb", "maglev")
    assert known.exit_code == 0, known.output
    assert known.stderr == ""


def test_a_new_lb_drops_the_stored_fields_it_cannot_use(etcd_server: EtcdServer) -> None:
    """The demo's sequence: `--lb maglev --hash-on header:x-user`, then `--lb round_robin
    --consecutive-5xx 3`: the stored `hash_on` (ring hash and Maglev only) goes, said."""
    url = etcd_server.url
    assert _policy(url, "set", "web", "--lb", "maglev", "--hash-on", "header:x-user").exit_code == 0
    result = _policy(url, "set", "web", "--lb", "round_robin", "--consecutive-5xx", "3")
    assert result.exit_code == 0, result.output
    assert 'lb: maglev -> round_robin; hash_on: ["header:x-user"] -> []' in result.stdout
    assert _stored(url, "web")["policy"]["hash_on"] == []
    conflict = _policy(url, "set", "web", "--hash-on", "header:x")  # given: refused, not dropped
    assert conflict.exit_code == 2
    assert "hash_on" in conflict.output


async def test_concurrent_sets_keep_every_field(etcd_server: EtcdServer) -> None:
    """Six `policy set` merges at once, each changing another field: every change is in the
    stored policy (each merge is a compare-and-swap on the key's revision, retried when
    another writer came first); none is lost to a read-then-write race."""
    changes: dict[str, Any] = {
        "hash_balance_factor": 150, "min_ring_size": 2048, "max_ring_size": 4096,
        "overprovisioning_factor": 150, "panic_threshold": 40.0, "timeout": 3.0,
    }  # fmt: skip
    prefixes = {
        "policies_prefix": DEFAULT_POLICIES_PREFIX, "services_prefix": DEFAULT_SERVICES_PREFIX,
    }  # fmt: skip
    async with EtcdClient(EtcdConfig(endpoints=(etcd_server.url,))) as client:
        first = PolicyPatch(fields={"lb": LbPolicy.RING_HASH})
        await set_merged(client, "api", first, replace=False, **prefixes)
        patches = [PolicyPatch(fields={name: value}) for name, value in changes.items()]
        await asyncio.gather(
            *(set_merged(client, "api", patch, replace=False, **prefixes) for patch in patches)
        )
        stored = await get_policy(client, "api")
    assert stored is not None
    policy = stored.to_mapping()
    assert policy["lb"] == "ring_hash"
    assert {name: policy[name] for name in changes} == changes


async def test_a_write_between_read_and_swap_is_not_overwritten(etcd_server: EtcdServer) -> None:
    """`put_if_revision` refuses a key changed since it was read (and a key created since it
    was read as absent): the later writer must read again."""
    config = EtcdConfig(endpoints=(etcd_server.url,))
    async with EtcdClient(config) as client:
        assert await client.put_if_revision(b"k", b"first", mod_revision=0)
        assert not await client.put_if_revision(b"k", b"lost", mod_revision=0)
        kv = await client.get(b"k")
        assert kv is not None
        await client.put(b"k", b"meanwhile")
        assert not await client.put_if_revision(b"k", b"stale", mod_revision=kv.mod_revision)
        latest = await client.get(b"k")
        assert latest is not None
        assert latest.value == b"meanwhile"
        assert await client.put_if_revision(b"k", b"next", mod_revision=latest.mod_revision)
