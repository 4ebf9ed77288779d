"""Scenario ``inference-site-loss``: every primary (GPU) node of the fleet is lost under load.

Traffic must fall back to the CPU pool (HAProxy's backup servers: a smaller model, less
capacity: graceful degradation), then return to the primary pool once the site is rebuilt.

Recovery (the runbook): confirm the fallback serves (HAProxy: every primary DOWN, a backup UP;
the fallback model's own golden outputs through the frontend), take the primaries out of rotation
(``maint``) so that nodes coming back do not take traffic before they are proven, power every
node back on, wait until the orchestrator has every replica running (each pays the real price:
pull, SHA-256, load, warm-up), check their files and golden outputs, then put the primaries back
in rotation (``ready``); HAProxy then stops sending to the backups by itself.

Two times are measured separately from the load samples: time to degraded service (failures back
within the SLO's error rate, whatever the latency and throughput) and time to full service (the
whole SLO held for its window: the inference RTO).

Blast radius: every primary node of one fleet; the fallback pool and HAProxy are not touched.
The steps are harness/runbook/fleet.py's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from harness.blast import Touch
from harness.errors import Inconclusive, StepFailed
from harness.golden import GoldenPair as Golden
from harness.load import SLO, recovered_at
from harness.runbook import fleet, fleet_load
from harness.runbook.timeline import injected_at
from harness.scenario import RunbookStep, Scenario

if TYPE_CHECKING:
    from harness.context import DrillContext


@dataclass
class SiteLossState(fleet.FleetState):
    fallback_inputs: list[list[float]] = field(default_factory=list)
    fallback_outputs: list[list[float]] = field(default_factory=list)
    #: the balancer's backup servers (the fallback pool)
    backups: list[str] = field(default_factory=list)


class InferenceSiteLoss(Scenario):
    name: ClassVar[str] = "inference-site-loss"
    #: the Kubernetes implementation of this name is scenarios/kube_site_loss.py
    platform: ClassVar[str] = "process-fleet"
    summary: ClassVar[str] = ("lose every GPU node under load; degrade to the CPU fallback, "
                              "rebuild, switch back")
    variants: ClassVar[tuple[str, ...]] = ("crash",)
    asset_kinds: ClassVar[tuple[str, ...]] = ("inference-service",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2, 3)
    destructive: ClassVar[bool] = True
    blast_radius: ClassVar[str] = "every primary node of the serving fleet (not the fallback)"

    def __init__(self, ctx: DrillContext) -> None:
        super().__init__(ctx)
        self.state = SiteLossState()

    def touches(self) -> list[Touch]:
        return fleet.fleet_touches(self.ctx)

    def preflight(self) -> None:
        s, a = self.state, self.ctx.asset
        fleet.require_fleet(self.ctx, s, Golden.load)
        if a.fallback_golden is None:
            raise Inconclusive(f"asset {a.id} has no fallback_golden: cannot prove the fallback "
                               f"model serves")
        fallback = Golden.load(a.fallback_golden)
        s.fallback_inputs, s.fallback_outputs = fallback.inputs, fallback.outputs
        s.replicas = sorted(fleet.orchestrator(self.ctx).view().replicas)
        s.backups = sorted(v.name for v in fleet.balancer(self.ctx).servers().values() if v.backup)
        if not s.backups:
            raise Inconclusive("HAProxy has no backup servers: there is no fallback to degrade to")

    def baseline(self) -> None:
        fleet_load.baseline_service(self.ctx, self.state, len(self.runbook()))

    def inject(self) -> None:
        s = self.state
        for name in self.ctx.asset.nodes:
            host = fleet.node(self.ctx, name)
            if host.state() != "off":
                host.crash()
                s.broken[name] = "crash"
        for name in s.broken:
            fleet.node(self.ctx, name).wait_off(5)
        self.ctx.event("fault.site", nodes=",".join(s.broken))

    def detect(self) -> bool:
        return fleet.all_down(self.ctx, self.state.replicas)

    def runbook(self) -> list[RunbookStep]:
        ctx, s = self.ctx, self.state
        return [
            RunbookStep("confirm-fallback", self.confirm_fallback,
                        "backups serve the fallback model's golden outputs"),
            fleet.take_out_of_rotation(ctx, s, "take-primaries-out-of-rotation",
                                       "maint on every primary"),
            RunbookStep("rebuild-site", self.rebuild, "power every node back on"),
            fleet.await_reschedule(ctx, s, "every replica running again on a Ready node"),
            fleet.smoke_test_replicas(ctx, s, "smoke-test-replicas", "golden outputs from each"),
            fleet.return_to_rotation(ctx, s, "switch-back", "ready on the primaries; UP in HAProxy"),
        ]

    def confirm_fallback(self) -> None:
        s = self.state
        servers = fleet.balancer(self.ctx).servers()
        up = [b for b in s.backups if servers[b].up]
        if not up:
            raise StepFailed("no backup server is UP: there is no degraded service")
        got = fleet.frontend(self.ctx).infer(s.fallback_inputs)
        if got != s.fallback_outputs:
            raise StepFailed("the frontend does not answer with the fallback model's golden "
                             "outputs while the primaries are down")
        self.ctx.event("service.degraded", backups=",".join(up))

    def rebuild(self) -> None:
        for name in list(self.state.broken):
            fleet.node(self.ctx, name).power_on(self.ctx.inventory.step_timeout_s)
            self.ctx.event("node.powered-on", node=name)

    def verify(self) -> None:
        fleet_load.verify_service(self.ctx, self.state, self.count_fallback_sessions,
                                  self.degraded_marks)

    def count_fallback_sessions(self) -> None:
        servers = fleet.balancer(self.ctx).servers()
        self.ctx.findings.smoke["fallback_sessions"] = sum(
            servers[b].total_sessions for b in self.state.backups)

    def degraded_marks(self, slo: SLO, rto: float | None) -> dict[str, float | None]:
        """Time to degraded service: from the fault until failures stayed within the SLO's error
        rate for its window, at any latency and any (non-zero) throughput."""
        degraded = SLO(max_error_rate=slo.max_error_rate, max_p95_ms=math.inf,
                       min_throughput_ratio=1e-9, sustain_s=slo.sustain_s)
        t0 = injected_at(self.ctx)
        at = recovered_at(self.state.fault_samples, degraded, self.state.base_rps, t0)
        t = None if at is None else round((at - t0).total_seconds(), 3)
        return {"degraded_s": t, "time_to_degraded_s": t,
                "time_to_full_s": None if rto is None else round(rto, 3)}

    def revert(self) -> None:
        fleet.revert_fleet(self.ctx, self.state)
