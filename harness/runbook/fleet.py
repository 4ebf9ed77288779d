"""Runbook steps for a serving fleet: replicas on nodes behind a load balancer, placed by an
orchestrator.

What the fleet drills (``gpu-node-loss``, ``inference-site-loss``) share, as functions of the
drill context and a :class:`FleetState`: the guards and the proof that a rescheduled replica has
whole weights to load; the recovery steps (take replicas out of rotation, wait until the
orchestrator has them running on healthy nodes, check each replica's files and golden outputs,
put them back in rotation); and the revert (thaw or power on what the drill stopped, wait until
every replica is home and every server UP). The load through the drill and the SLO gate are in
harness/runbook/fleet_load.py.

The adapters are typed by harness/targets/protocols.py (the load by the protocols below); the
real ones are in harness/targets/ (fleet.py, loadbalancer.py, inference.py), the in-memory ones
in harness/fakes/fleet.py. Step factories bind ``(ctx, state)`` with ``functools.partial``, so
an override reads the state from ``original.args[1]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from harness.blast import Touch, TouchKind
from harness.context import DrillContext
from harness.errors import GuardRefused, Inconclusive, StepFailed, TargetUnreachable
from harness.integrity import Manifest
from harness.load import LoadProfile, SecondSample
from harness.model import RestorePoint
from harness.scenario import RunbookStep
from harness.targets.fleet import FleetView, ReplicaView
from harness.targets.protocols import (
    EndpointAPI,
    LoadBalancerAPI,
    NodeHostAPI,
    OrchestratorAPI,
)


class LoadSource(Protocol):
    """A running load against an endpoint, giving per-second samples (harness.load.LoadRun:
    locust in its own process; an in-memory one in harness.fakes.fleet)."""

    @property
    def running(self) -> bool: ...
    def start(self) -> None: ...
    def samples(self) -> list[SecondSample]: ...
    def wait(self, timeout_s: float | None = None) -> list[SecondSample]: ...
    def stop(self) -> list[SecondSample]: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


@runtime_checkable
class GeneratesLoad(Protocol):
    """A frontend adapter that makes its own load (an in-memory fleet in unit tests): handed in
    by target name like any adapter, it replaces the locust worker process."""

    def load_source(self, profile: LoadProfile, label: str) -> LoadSource: ...


class GoldenIO(Protocol):
    """Golden inputs and the outputs the service must give for them."""

    @property
    def inputs(self) -> list[list[float]]: ...
    @property
    def outputs(self) -> list[list[float]]: ...


@dataclass
class FleetState:
    """What a fleet drill learns in one phase and uses in a later one."""

    golden_inputs: list[list[float]] = field(default_factory=list)
    golden_outputs: list[list[float]] = field(default_factory=list)
    #: the store's manifest of the weights a rescheduled replica loads
    manifest: Manifest | None = None
    #: the replicas the recovery moves and puts back in rotation
    replicas: list[str] = field(default_factory=list)
    base_samples: list[SecondSample] = field(default_factory=list)
    base_rps: float = 0.0
    #: the continuous load from before the fault until the service is back
    load: LoadSource | None = None
    fault_samples: list[SecondSample] = field(default_factory=list)
    acceptance_samples: list[SecondSample] = field(default_factory=list)
    #: servers this drill set to maint (revert puts them back in rotation)
    maint_servers: set[str] = field(default_factory=set)
    #: nodes this drill crashed or froze, and how
    broken: dict[str, str] = field(default_factory=dict)
    runbook_done_mono: float | None = None


# -- adapters ----------------------------------------------------------------------------------


def balancer(ctx: DrillContext) -> LoadBalancerAPI:
    assert ctx.asset.balancer is not None
    return ctx.adapters.loadbalancer(ctx.asset.balancer)


def orchestrator(ctx: DrillContext) -> OrchestratorAPI:
    a = ctx.asset
    if a.orchestrator is None:
        raise Inconclusive(f"asset {a.id} names no orchestrator: cannot tell where replicas run")
    return ctx.adapters.orchestrator(a.orchestrator)


def frontend(ctx: DrillContext) -> EndpointAPI:
    assert ctx.asset.served_by is not None
    return ctx.adapters.inference(ctx.asset.served_by)


def node(ctx: DrillContext, name: str) -> NodeHostAPI:
    return ctx.adapters.node(name)


def replica_endpoint(ctx: DrillContext, r: ReplicaView) -> EndpointAPI:
    """The replica's own endpoint comes from the orchestrator, not the inventory: it moves."""
    return orchestrator(ctx).endpoint(r, frontend(ctx).target.model)


def fleet_touches(ctx: DrillContext) -> list[Touch]:
    """Any primary node may be the victim; servers of the balancer's pool are set to maint and
    back. The orchestrator is only watched: it moves replicas on its own."""
    a = ctx.asset
    out = [Touch(n, TouchKind.NODE, n) for n in a.nodes]
    if a.balancer is not None:
        out.append(Touch(a.balancer, TouchKind.POOL, ctx.inventory.loadbalancer(a.balancer).backend))
    return out


# -- before the fault ------------------------------------------------------------------------------


def require_fleet(ctx: DrillContext, state: FleetState,
                  load_golden: Callable[[Path], GoldenIO]) -> None:
    """Preflight: every node and the balancer drill-safe, golden outputs to compare with, the
    fleet settled with every server UP, and the weights a rescheduled replica would pull whole
    in the store (otherwise no node is broken)."""
    a, inv = ctx.asset, ctx.inventory
    for name in (a.balancer, *a.nodes):
        assert name is not None
        if not inv.targets[name].drill_safe:
            raise GuardRefused(f"target {name!r} is not marked drill_safe in {inv.path}")
    if a.golden is None:
        raise Inconclusive(f"asset {a.id} has no golden file: cannot prove the service answers "
                           f"as before")
    golden = load_golden(a.golden)
    state.golden_inputs, state.golden_outputs = golden.inputs, golden.outputs
    state.maint_servers, state.broken = set(), {}
    state.fault_samples, state.acceptance_samples = [], []
    view = orchestrator(ctx).view()
    if not view.settled:
        raise Inconclusive(f"the fleet is not settled before the fault (nodes {view.nodes}, "
                           f"replicas moving or away from home)")
    servers = balancer(ctx).servers()
    not_up = [s.name for s in servers.values() if not s.up]
    if not_up:
        raise Inconclusive(f"HAProxy servers not UP before the fault: {', '.join(not_up)}")
    missing = set(view.replicas) - set(servers)
    if missing:
        raise Inconclusive(f"replicas without an HAProxy server: {', '.join(missing)}")
    _prove_weights(ctx, state)


def _prove_weights(ctx: DrillContext, state: FleetState) -> None:
    """The restorable copy a rescheduled replica pulls: there and whole."""
    a = ctx.asset
    store = ctx.adapters.s3(a.store)
    raw = store.read_bytes(a.bucket, a.manifest_key)
    if raw is None:
        raise Inconclusive(f"no manifest at s3://{a.bucket}/{a.manifest_key}: a rescheduled "
                           f"replica would have nothing to load")
    state.manifest = manifest = Manifest.from_bytes(raw, source=f"s3://{a.bucket}/{a.manifest_key}")
    got = store.hash_objects(a.bucket, [(a.prefix + f.path, None) for f in manifest.files])
    bad = [f.path for f in manifest.files if got[a.prefix + f.path][0] != f.sha256]
    if bad:
        raise Inconclusive(f"the weights in the store do not match their manifest ({bad[0]}...): "
                           f"a rescheduled replica could not load; refusing to break a node")
    ctx.event("restorable.proven", source="store", objects=len(manifest.files))


def all_down(ctx: DrillContext, replicas: list[str]) -> bool:
    """Detection: the balancer's own health checks mark every one of these servers DOWN (for a
    hang, only the check time-out can)."""
    servers = balancer(ctx).servers()
    return all(servers[r].down for r in replicas)


# -- waiting on the fleet ----------------------------------------------------------------------------


def wait_placed(ctx: DrillContext, replicas: list[str], avoid: set[str]) -> FleetView:
    """Wait until each replica runs on a Ready node outside ``avoid``, nothing is moving, the
    replica answers ready and the balancer's server slot points at it."""
    inv = ctx.inventory
    deadline = ctx.clock.mono() + inv.step_timeout_s
    last = ""
    while ctx.clock.mono() < deadline:
        view, servers = orchestrator(ctx).view(), balancer(ctx).servers()
        waiting = []
        for name in replicas:
            r = view.replicas[name]
            if r.pending_node is not None or r.node in avoid or not view.nodes[r.node]:
                waiting.append(f"{name}: on {r.node}, pending {r.pending_node}")
            elif servers[name].port != r.port:
                waiting.append(f"{name}: HAProxy still points at {servers[name].addr}")
            else:
                try:
                    ready = replica_endpoint(ctx, r).readiness().ready
                except TargetUnreachable:
                    ready = False
                if not ready:
                    waiting.append(f"{name}: not ready on {r.node}:{r.port}")
        if not waiting:
            return view
        last = "; ".join(waiting)
        ctx.clock.sleep(inv.probe_interval_s)
    raise StepFailed(f"replicas not running on healthy nodes after {inv.step_timeout_s:g} s: "
                     f"{last}")


def check_replica(ctx: DrillContext, state: FleetState, r: ReplicaView) -> None:
    """The replica's own record of what it loaded, against the store's manifest; sets the
    restore point (the manifest version it loaded from)."""
    assert state.manifest is not None  # read in preflight
    got = replica_endpoint(ctx, r).node_state()
    expected = {f.path: f.sha256 for f in state.manifest.files}
    seen = {str(f.get("path")): f.get("sha256") for f in got.get("files", [])}
    bad = []
    for path, sha in expected.items():
        actual = seen.get(path)
        if not ctx.integrity(f"{r.name}@{r.node}:{path}", sha,
                             actual if isinstance(actual, str) else None):
            bad.append(path)
    if bad:
        raise StepFailed(f"replica {r.name} on {r.node} loaded {len(bad)} file(s) that do not "
                         f"match the store's manifest: {', '.join(bad[:3])}")
    a = ctx.asset
    store = ctx.adapters.s3(a.store)
    versions = [v for v in store.list_versions(a.bucket, a.manifest_key)
                if v.key == a.manifest_key and not v.is_delete_marker]
    if versions:
        ctx.findings.restore_point = RestorePoint(
            "bucket-version", versions[0].version_id, versions[0].last_modified,
            f"s3://{a.bucket}/{a.prefix}")


def out_of_rotation(ctx: DrillContext, state: FleetState, servers: list[str]) -> None:
    lb = balancer(ctx)
    for s in servers:
        lb.set_state(s, "maint")
        state.maint_servers.add(s)
    ctx.event("traffic.removed", servers=",".join(servers))


def back_in_rotation(ctx: DrillContext, state: FleetState, servers: list[str]) -> None:
    lb = balancer(ctx)
    for s in servers:
        lb.set_state(s, "ready")
        state.maint_servers.discard(s)
    for s in servers:
        view = lb.wait_for(s, "UP", ctx.inventory.step_timeout_s)
        if not view.up:
            raise StepFailed(f"server {s} not UP after being put back in rotation: "
                             f"{view.status} (check {view.check})")
    ctx.event("traffic.switched", servers=",".join(servers), to="primary")
    state.runbook_done_mono = ctx.clock.mono()


# -- the recovery steps --------------------------------------------------------------------------------


def _take_out(ctx: DrillContext, state: FleetState) -> None:
    out_of_rotation(ctx, state, state.replicas)


def _await(ctx: DrillContext, state: FleetState, avoid: Callable[[], set[str]],
           announce: bool) -> None:
    view = wait_placed(ctx, state.replicas, avoid())
    for name in state.replicas:
        r = view.replicas[name]
        if announce:
            ctx.event("replica.rescheduled", replica=name, node=r.node, port=r.port)
        check_replica(ctx, state, r)


def _smoke(ctx: DrillContext, state: FleetState) -> None:
    view = orchestrator(ctx).view()
    for name in state.replicas:
        r = view.replicas[name]
        got = replica_endpoint(ctx, r).infer(state.golden_inputs)
        same = sum(1 for x, y in zip(got, state.golden_outputs, strict=False) if x == y)
        if same != len(state.golden_outputs):
            raise StepFailed(f"replica {r.name} on {r.node}: {len(state.golden_outputs) - same} "
                             f"of {len(state.golden_outputs)} golden outputs differ")


def _back(ctx: DrillContext, state: FleetState) -> None:
    back_in_rotation(ctx, state, state.replicas)


def take_out_of_rotation(ctx: DrillContext, state: FleetState, name: str,
                         summary: str) -> RunbookStep:
    """``maint`` on the servers of ``state.replicas``: nodes coming back take no traffic before
    they are proven."""
    return RunbookStep(name, partial(_take_out, ctx, state), summary)


def await_reschedule(ctx: DrillContext, state: FleetState, summary: str, *,
                     avoid: Callable[[], set[str]] = set, announce: bool = False) -> RunbookStep:
    """Every replica of ``state.replicas`` running on a Ready node outside ``avoid()``, its
    files checked against the store's manifest (``announce``: journal where each went)."""
    return RunbookStep("await-reschedule", partial(_await, ctx, state, avoid, announce), summary)


def smoke_test_replicas(ctx: DrillContext, state: FleetState, name: str,
                        summary: str) -> RunbookStep:
    """The golden outputs from each replica of ``state.replicas``, on its own endpoint."""
    return RunbookStep(name, partial(_smoke, ctx, state), summary)


def return_to_rotation(ctx: DrillContext, state: FleetState, name: str,
                       summary: str) -> RunbookStep:
    """``ready`` on their servers, then wait until the balancer's checks see each UP."""
    return RunbookStep(name, partial(_back, ctx, state), summary)


# -- revert -------------------------------------------------------------------------------------------


def revert_fleet(ctx: DrillContext, state: FleetState) -> None:
    """Stop the load, thaw or power on what the drill stopped, put its servers back in rotation
    and wait until the fleet is as found: settled, every server UP."""
    if state.load is not None and state.load.running:
        state.fault_samples = state.load.stop()
    for name, how in list(state.broken.items()):
        host = node(ctx, name)
        found = host.state()
        if found == "stopped":
            host.thaw()
        elif found == "off":
            host.power_on(ctx.inventory.step_timeout_s)
        ctx.event("revert.node", node=name, was=how, found=found)
        del state.broken[name]
    lb = balancer(ctx)
    for s in sorted(state.maint_servers):
        lb.set_state(s, "ready")
    state.maint_servers.clear()
    deadline = ctx.clock.mono() + ctx.inventory.step_timeout_s
    while True:
        view = orchestrator(ctx).view()
        down = [s.name for s in lb.servers().values() if not s.up]
        if view.settled and not down:
            return
        if ctx.clock.mono() > deadline:
            raise StepFailed(f"fleet not back as found: nodes {view.nodes}, replicas "
                             f"{[(r.name, r.node) for r in view.replicas.values()]}, "
                             f"servers not UP: {down}")
        ctx.clock.sleep(0.2)
