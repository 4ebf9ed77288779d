"""Scenario ``gpu-node-loss``: one GPU node of an inference fleet is lost under real traffic.

Variants:
  crash  the node's process group is killed: its replica's port refuses connections.
  hang   the node is frozen with SIGSTOP: connections are accepted by the kernel and never
         answered, so only health-check time-outs reveal it.

Recovery (the runbook, as an operator would run it): take the lost replica's HAProxy server out
of rotation (``maint``), wait for the orchestrator to reschedule the replica onto a healthy node
(a new process that pulls the weights from the store, verifies every SHA-256, loads and warms
up), check the new replica's files against the store's manifest and its golden outputs, then put
the server back in rotation (``ready``) and wait until HAProxy's checks see it UP.

Load runs through the whole drill: a baseline sample before the fault, continuous load from
before the fault until the service is back, and an acceptance run afterwards that is a gate (SLO
missed: FAIL). The inference RTO is the time from injection until the SLO held for its sustained
window; it goes into the ``load`` evidence section with the per-second availability timeline and
the failed-request counts. Revert thaws or powers on what the drill stopped and waits until every
replica is back on its home node and every server is UP.

Blast radius: one node (its process group) of the fleet behind one load balancer.
:class:`FleetDrill` holds what this scenario shares with ``inference-site-loss``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from harness.blast import Touch, TouchKind
from harness.errors import GuardRefused, Inconclusive, StepFailed, TargetUnreachable
from harness.integrity import Manifest
from harness.inventory import InferenceTarget
from harness.load import (
    SLO,
    LoadRun,
    SecondSample,
    availability_timeline,
    baseline_rps,
    recovered_at,
    slo_holds,
    summarize,
)
from harness.model import RestorePoint, event_by_name
from harness.scenario import RunbookStep, Scenario
from harness.targets.fleet import FleetView, NodeHost, Orchestrator, ReplicaView
from harness.targets.inference import InferenceEndpoint
from harness.targets.loadbalancer import LoadBalancer

#: Seconds the continuous load may outlast the runbook while waiting for the SLO to hold.
RECOVERY_SLACK_S = 5.0


@dataclass(frozen=True)
class Golden:
    inputs: list[list[float]]
    outputs: list[list[float]]

    @classmethod
    def load(cls, path: Path) -> Golden:
        doc = json.loads(path.read_text())
        return cls(doc["inputs"], doc["outputs"])


class FleetDrill(Scenario):
    """What the fleet scenarios share: guards, the load through the drill, the SLO gate, the
    wait for the orchestrator and the revert."""

    asset_kinds: ClassVar[tuple[str, ...]] = ("inference-service",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2, 3)
    destructive: ClassVar[bool] = True

    golden: Golden
    base_samples: list[SecondSample]
    base_rps: float
    load: LoadRun | None = None
    fault_samples: list[SecondSample]
    acceptance_samples: list[SecondSample]
    manifest: Manifest
    #: servers this drill set to maint (revert puts them back in rotation)
    maint_servers: set[str]
    #: nodes this drill crashed or froze, and how
    broken: dict[str, str]
    runbook_done_mono: float | None = None

    # -- adapters ------------------------------------------------------------------------------

    @property
    def lb(self) -> LoadBalancer:
        assert self.ctx.asset.balancer is not None
        return self.ctx.adapters.loadbalancer(self.ctx.asset.balancer)

    @property
    def orchestrator(self) -> Orchestrator:
        a = self.ctx.asset
        if a.orchestrator is None:
            raise Inconclusive(f"asset {a.id} names no orchestrator: cannot tell where replicas "
                               f"run")
        return self.ctx.adapters.orchestrator(a.orchestrator)

    @property
    def frontend(self) -> InferenceEndpoint:
        assert self.ctx.asset.served_by is not None
        return self.ctx.adapters.inference(self.ctx.asset.served_by)

    def node(self, name: str) -> NodeHost:
        return self.ctx.adapters.node(name)

    def replica_endpoint(self, r: ReplicaView) -> InferenceEndpoint:
        """The replica's own URL comes from the orchestrator, not the inventory: it moves."""
        model = self.frontend.target.model
        return InferenceEndpoint(InferenceTarget(f"replica {r.name}", r.url, model, False),
                                 timeout_s=10)

    def primary_servers(self) -> list[str]:
        return sorted(self.orchestrator.view().replicas)

    def touches(self) -> list[Touch]:
        """Any primary node may be the victim; servers of the balancer's pool are set to maint
        and back. The orchestrator is only watched: it moves replicas on its own."""
        a = self.ctx.asset
        out = [Touch(n, TouchKind.NODE, n) for n in a.nodes]
        if a.balancer is not None:
            out.append(Touch(a.balancer, TouchKind.POOL,
                             self.ctx.inventory.loadbalancer(a.balancer).backend))
        return out

    # -- preflight and baseline ------------------------------------------------------------------

    def preflight(self) -> None:
        a = self.ctx.asset
        inv = self.ctx.inventory
        for name in (a.balancer, *a.nodes):
            assert name is not None
            if not inv.targets[name].drill_safe:
                raise GuardRefused(f"target {name!r} is not marked drill_safe in {inv.path}")
        if a.golden is None:
            raise Inconclusive(f"asset {a.id} has no golden file: cannot prove the service "
                               f"answers as before")
        self.golden = Golden.load(a.golden)
        self.maint_servers, self.broken = set(), {}
        self.fault_samples, self.acceptance_samples = [], []
        view = self.orchestrator.view()
        if not view.settled:
            raise Inconclusive(f"the fleet is not settled before the fault (nodes "
                               f"{view.nodes}, replicas moving or away from home)")
        servers = self.lb.servers()
        not_up = [s.name for s in servers.values() if not s.up]
        if not_up:
            raise Inconclusive(f"HAProxy servers not UP before the fault: {', '.join(not_up)}")
        missing = set(view.replicas) - set(servers)
        if missing:
            raise Inconclusive(f"replicas without an HAProxy server: {', '.join(missing)}")
        # The restorable copy a rescheduled replica pulls: prove it is there and whole.
        store = self.ctx.adapters.s3(a.store)
        raw = store.read_bytes(a.bucket, a.manifest_key)
        if raw is None:
            raise Inconclusive(f"no manifest at s3://{a.bucket}/{a.manifest_key}: a rescheduled "
                               f"replica would have nothing to load")
        self.manifest = Manifest.from_bytes(raw, source=f"s3://{a.bucket}/{a.manifest_key}")
        got = store.hash_objects(a.bucket, [(a.prefix + f.path, None) for f in
                                            self.manifest.files])
        bad = [f.path for f in self.manifest.files if got[a.prefix + f.path][0] != f.sha256]
        if bad:
            raise Inconclusive(f"the weights in the store do not match their manifest ({bad[0]}"
                               f"...): a rescheduled replica could not load; refusing to break "
                               f"a node")
        self.ctx.event("restorable.proven", source="store", objects=len(self.manifest.files))

    def baseline(self) -> None:
        outputs = self.frontend.infer(self.golden.inputs)
        if outputs != self.golden.outputs:
            raise Inconclusive("the service's outputs for the golden inputs differ from the "
                               "golden file before the fault")
        self.ctx.event("baseline.outputs", rows=len(outputs))
        settings = self.ctx.inventory.load
        run = self._load_run("baseline", settings.baseline_s)
        with run:
            samples = run.wait()
        self.base_samples = samples
        self.base_rps = baseline_rps(samples)
        summary = summarize(samples)
        self.ctx.event("load.baseline", rps=round(self.base_rps, 2),
                       failures=int(summary["failures"] or 0))
        if self.base_rps <= 0 or summary["failures"]:
            raise Inconclusive(f"the service is not in service before the fault (baseline: "
                               f"{summary})")
        slo = self.ctx.inventory.slo
        held = sum(1 for s in samples if slo_holds(s, slo, self.base_rps))
        if held < len(samples) / 2:
            raise Inconclusive(f"the SLO does not hold even before the fault ({held} of "
                               f"{len(samples)} baseline seconds): the drill could not tell "
                               f"recovery from normal service")
        # Continuous load from before the fault until the service is back; bounded so that it
        # stops by itself whatever happens to this process.
        inv = self.ctx.inventory
        bound = (inv.detect_timeout_s + len(self.runbook()) * inv.step_timeout_s
                 + slo.sustain_s + 2 * RECOVERY_SLACK_S)
        self.load = self._load_run("fault", bound)
        self.load.start()
        time.sleep(min(2.0, slo.sustain_s))  # a little load before the fault, for the chart
        self.ctx.event("load.started", bound_s=round(bound, 1))

    def _load_run(self, label: str, duration_s: float) -> LoadRun:
        settings = self.ctx.inventory.load
        fe = self.frontend.target
        profile = settings.profile(fe.url, fe.model, self.golden.inputs, duration_s=duration_s)
        # absolute: the worker runs in that directory, and the evidence root may be relative
        log_dir = (self.ctx.work_dir / self.ctx.drill_id / f"load-{label}").resolve()
        return LoadRun(profile, log_dir=log_dir)

    # -- waiting on the fleet ---------------------------------------------------------------------

    def wait_placed(self, replicas: list[str], avoid: set[str]) -> FleetView:
        """Wait until each replica runs on a Ready node outside ``avoid``, nothing is moving, the
        replica answers ready and HAProxy's server slot points at it."""
        deadline = time.monotonic() + self.ctx.inventory.step_timeout_s
        last = ""
        while time.monotonic() < deadline:
            view = self.orchestrator.view()
            servers = self.lb.servers()
            waiting = []
            for name in replicas:
                r = view.replicas[name]
                if r.pending_node is not None or r.node in avoid or not view.nodes[r.node]:
                    waiting.append(f"{name}: on {r.node}, pending {r.pending_node}")
                elif servers[name].port != r.port:
                    waiting.append(f"{name}: HAProxy still points at {servers[name].addr}")
                else:
                    try:
                        ready = self.replica_endpoint(r).readiness().ready
                    except TargetUnreachable:
                        ready = False
                    if not ready:
                        waiting.append(f"{name}: not ready on {r.node}:{r.port}")
            if not waiting:
                return view
            last = "; ".join(waiting)
            time.sleep(self.ctx.inventory.probe_interval_s)
        raise StepFailed(f"replicas not running on healthy nodes after "
                         f"{self.ctx.inventory.step_timeout_s:g} s: {last}")

    def check_replica(self, r: ReplicaView) -> None:
        """The replica's own record of what it loaded, against the store's manifest; sets the
        restore point (the manifest version it loaded from)."""
        state = self.replica_endpoint(r).node_state()
        expected = {f.path: f.sha256 for f in self.manifest.files}
        seen = {str(f.get("path")): f.get("sha256") for f in state.get("files", [])}
        bad = []
        for path, sha in expected.items():
            actual = seen.get(path)
            if not self.ctx.integrity(f"{r.name}@{r.node}:{path}", sha,
                                      actual if isinstance(actual, str) else None):
                bad.append(path)
        if bad:
            raise StepFailed(f"replica {r.name} on {r.node} loaded {len(bad)} file(s) that do "
                             f"not match the store's manifest: {', '.join(bad[:3])}")
        a = self.ctx.asset
        store = self.ctx.adapters.s3(a.store)
        versions = [v for v in store.list_versions(a.bucket, a.manifest_key)
                    if v.key == a.manifest_key and not v.is_delete_marker]
        if versions:
            self.ctx.findings.restore_point = RestorePoint(
                "bucket-version", versions[0].version_id, versions[0].last_modified,
                f"s3://{a.bucket}/{a.prefix}")

    def smoke(self, r: ReplicaView) -> None:
        got = self.replica_endpoint(r).infer(self.golden.inputs)
        same = sum(1 for x, y in zip(got, self.golden.outputs, strict=False) if x == y)
        if same != len(self.golden.outputs):
            raise StepFailed(f"replica {r.name} on {r.node}: {len(self.golden.outputs) - same} "
                             f"of {len(self.golden.outputs)} golden outputs differ")

    def back_in_rotation(self, servers: list[str]) -> None:
        for s in servers:
            self.lb.set_state(s, "ready")
            self.maint_servers.discard(s)
        for s in servers:
            view = self.lb.wait_for(s, "UP", self.ctx.inventory.step_timeout_s)
            if not view.up:
                raise StepFailed(f"server {s} not UP after being put back in rotation: "
                                 f"{view.status} (check {view.check})")
        self.ctx.event("traffic.switched", servers=",".join(servers), to="primary")
        self.runbook_done_mono = self.ctx.clock.mono()

    def out_of_rotation(self, servers: list[str]) -> None:
        for s in servers:
            self.lb.set_state(s, "maint")
            self.maint_servers.add(s)
        self.ctx.event("traffic.removed", servers=",".join(servers))

    # -- verify: the SLO gate ---------------------------------------------------------------------

    def t0(self) -> datetime:
        ev = event_by_name(self.ctx.journal.events, "fault.injected")
        assert ev is not None
        return ev.utc

    def since_t0(self, event: str) -> float | None:
        ev = event_by_name(self.ctx.journal.events, event)
        t0 = event_by_name(self.ctx.journal.events, "fault.injected")
        return None if ev is None or t0 is None else round(ev.mono - t0.mono, 3)

    def wait_recovered(self, slo: SLO) -> datetime | None:
        """Keep the continuous load running until the SLO has held for its window after the
        fault, or the bound (the window plus slack after the runbook ended) passes."""
        assert self.load is not None
        end = self.ctx.clock.mono() + slo.sustain_s + RECOVERY_SLACK_S
        while True:
            at = recovered_at(self.load.samples(), slo, self.base_rps, self.t0())
            if at is not None or self.ctx.clock.mono() >= end or not self.load.running:
                return at
            self.ctx.clock.sleep(0.5)

    def verify(self) -> None:
        slo = self.ctx.inventory.slo
        at = self.wait_recovered(slo) if self.load is not None else None
        if self.load is not None:
            self.fault_samples = self.load.stop()
            if at is None:  # the last samples arrive on stop
                at = recovered_at(self.fault_samples, slo, self.base_rps, self.t0())
        if at is not None:
            # journaled when measured; the instant itself is in the detail
            self.ctx.event("load.recovery.measured",
                           since_t0_s=round((at - self.t0()).total_seconds(), 3))
        self.extra_verify()
        run = self._load_run("acceptance", self.ctx.inventory.load.acceptance_s)
        with run:
            self.acceptance_samples = run.wait()
        acc = summarize(self.acceptance_samples)
        reasons = self._gate(acc, slo)
        rto = None if at is None else (at - self.t0()).total_seconds()
        self.record_load(slo, rto, acc, reasons)
        if rto is None:
            self.ctx.fail(f"inference SLO never held for {slo.sustain_s:g} s after the fault "
                          f"(within {RECOVERY_SLACK_S:g} s slack after the runbook)")
        else:
            target = self.ctx.inventory.objectives_for(self.ctx.asset).rto_s
            if rto > target:
                self.ctx.fail(f"inference RTO {rto:.1f} s exceeds the target {target:g} s")
        for reason in reasons:
            self.ctx.fail(f"acceptance run missed the SLO: {reason}")
        outputs = self.frontend.infer(self.golden.inputs)
        same = sum(1 for x, y in zip(outputs, self.golden.outputs, strict=False) if x == y)
        self.ctx.findings.smoke.update({"golden_inputs": len(self.golden.outputs),
                                        "identical_outputs": same,
                                        "endpoint": self.frontend.target.url})
        if same != len(self.golden.outputs):
            self.ctx.fail(f"golden outputs through the frontend: "
                          f"{len(self.golden.outputs) - same} differ")

    def extra_verify(self) -> None:
        """Scenario-specific checks before the acceptance run."""

    def _gate(self, acc: dict[str, float | int | None], slo: SLO) -> list[str]:
        reasons = []
        if not acc["requests"]:
            return ["no request completed during the acceptance run"]
        err, p95, good = acc["error_rate"], acc["p95_ms"], acc["goodput_rps"]
        if err is not None and err > slo.max_error_rate:
            reasons.append(f"error rate {err:.2%} > {slo.max_error_rate:.2%}")
        if p95 is None or p95 > slo.max_p95_ms:
            reasons.append(f"p95 {p95} ms > {slo.max_p95_ms:g} ms")
        if good is None or good < slo.min_throughput_ratio * self.base_rps:
            reasons.append(f"throughput {good or 0:.1f} req/s < {slo.min_throughput_ratio:g} x "
                           f"baseline {self.base_rps:.1f} req/s")
        return reasons

    def record_load(self, slo: SLO, rto: float | None, acc: dict[str, float | int | None],
                    reasons: list[str]) -> None:
        t0 = self.t0()
        during = [s for s in self.fault_samples if s.end > t0]
        marks = {"fault_s": 0.0, "detected_s": self.since_t0("fault.detected"),
                 "switched_s": self.since_t0("traffic.switched"),
                 "recovered_s": None if rto is None else round(rto, 3)}
        marks.update(self.extra_marks(slo, rto))
        self.ctx.findings.sections["load"] = {
            # "met"/"summary" are the verdict the JUnit and Markdown renderers read; the rest
            # is the SLO the acceptance run was judged against
            "slo": {"met": not reasons,
                    "summary": "acceptance run met the SLO" if not reasons
                    else "acceptance run missed the SLO: " + "; ".join(reasons),
                    "max_error_rate": slo.max_error_rate, "max_p95_ms": slo.max_p95_ms,
                    "min_throughput_ratio": slo.min_throughput_ratio,
                    "sustain_s": slo.sustain_s},
            "baseline_rps": round(self.base_rps, 3),
            "baseline": summarize(self.base_samples),
            "during_fault": summarize(during),
            "acceptance": {**acc, "met": not reasons, "missed": reasons},
            "inference_rto_s": None if rto is None else round(rto, 3),
            "failed_requests": sum(s.failures for s in during),
            "failed_requests_total": sum(s.failures for s in (
                *self.base_samples, *self.fault_samples, *self.acceptance_samples)),
            "marks": marks,
            "timeline": availability_timeline(
                [*self.base_samples, *self.fault_samples, *self.acceptance_samples], t0),
            "phases": {"baseline_s": [_rel(self.base_samples, t0)],
                       "acceptance_s": [_rel(self.acceptance_samples, t0)]},
        }

    def extra_marks(self, slo: SLO, rto: float | None) -> dict[str, float | None]:
        return {}

    # -- revert ---------------------------------------------------------------------------------

    def revert(self) -> None:
        if self.load is not None and self.load.running:
            self.fault_samples = self.load.stop()
        for name, how in list(self.broken.items()):
            host = self.node(name)
            state = host.state()
            if state == "stopped":
                host.thaw()
            elif state == "off":
                host.power_on(self.ctx.inventory.step_timeout_s)
            self.ctx.event("revert.node", node=name, was=how, found=state)
            del self.broken[name]
        for s in sorted(self.maint_servers):
            self.lb.set_state(s, "ready")
        self.maint_servers.clear()
        deadline = time.monotonic() + self.ctx.inventory.step_timeout_s
        while True:
            view = self.orchestrator.view()
            servers = self.lb.servers()
            down = [s.name for s in servers.values() if not s.up]
            if view.settled and not down:
                return
            if time.monotonic() > deadline:
                raise StepFailed(f"fleet not back as found: nodes {view.nodes}, replicas "
                                 f"{[(r.name, r.node) for r in view.replicas.values()]}, "
                                 f"servers not UP: {down}")
            time.sleep(0.2)


def _rel(samples: list[SecondSample], t0: datetime) -> list[float]:
    if not samples:
        return []
    start = min(s.utc for s in samples)
    end = max(s.end for s in samples)
    return [round((start - t0).total_seconds(), 3), round((end - t0).total_seconds(), 3)]


class GpuNodeLoss(FleetDrill):
    name: ClassVar[str] = "gpu-node-loss"
    summary: ClassVar[str] = ("lose one GPU node under load (crash or hang); the replica is "
                              "rescheduled and traffic switched back")
    variants: ClassVar[tuple[str, ...]] = ("crash", "hang")
    blast_radius: ClassVar[str] = "one node (its process group) of the serving fleet"

    victim: str
    replicas: list[str]

    def preflight(self) -> None:
        super().preflight()
        view = self.orchestrator.view()
        for name in self.ctx.asset.nodes:
            if view.on(name) and self.node(name).state() == "running":
                self.victim = name
                self.replicas = [r.name for r in view.on(name)]
                break
        else:
            raise Inconclusive("no running node hosts a replica: nothing to lose")
        self.ctx.event("victim.chosen", node=self.victim, replicas=",".join(self.replicas))

    def inject(self) -> None:
        host = self.node(self.victim)
        if self.ctx.variant == "crash":
            host.crash()
            self.broken[self.victim] = "crash"
            host.wait_off(5)
        else:
            host.freeze()
            self.broken[self.victim] = "hang"
        self.ctx.event("fault.node", node=self.victim, variant=self.ctx.variant)

    def detect(self) -> bool:
        """HAProxy's own health checks mark the replica's server DOWN (for a hang, only the check
        time-out can)."""
        servers = self.lb.servers()
        return all(servers[r].down for r in self.replicas)

    def runbook(self) -> list[RunbookStep]:
        return [
            RunbookStep("take-out-of-rotation", self.take_out, "maint on the lost replica's server"),
            RunbookStep("await-reschedule", self.await_reschedule,
                        "the orchestrator runs the replica on a healthy node"),
            RunbookStep("smoke-test-replica", self.smoke_test, "golden outputs from the new replica"),
            RunbookStep("return-to-rotation", self.return_to_rotation,
                        "ready on the server; HAProxy sees it UP"),
        ]

    def take_out(self) -> None:
        self.out_of_rotation(self.replicas)

    def await_reschedule(self) -> None:
        view = self.wait_placed(self.replicas, avoid={self.victim})
        for name in self.replicas:
            r = view.replicas[name]
            self.ctx.event("replica.rescheduled", replica=name, node=r.node, port=r.port)
            self.check_replica(r)

    def smoke_test(self) -> None:
        view = self.orchestrator.view()
        for name in self.replicas:
            self.smoke(view.replicas[name])

    def return_to_rotation(self) -> None:
        self.back_in_rotation(self.replicas)

