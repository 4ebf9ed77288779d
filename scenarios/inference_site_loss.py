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
"""

from __future__ import annotations

import math
from typing import ClassVar

from harness.errors import Inconclusive, StepFailed
from harness.load import SLO, recovered_at
from harness.scenario import RunbookStep
from scenarios.gpu_node_loss import FleetDrill, Golden


class InferenceSiteLoss(FleetDrill):
    name: ClassVar[str] = "inference-site-loss"
    summary: ClassVar[str] = ("lose every GPU node under load; degrade to the CPU fallback, "
                              "rebuild, switch back")
    variants: ClassVar[tuple[str, ...]] = ("crash",)
    blast_radius: ClassVar[str] = "every primary node of the serving fleet (not the fallback)"

    fallback: Golden
    replicas: list[str]
    backups: list[str]

    def preflight(self) -> None:
        super().preflight()
        a = self.ctx.asset
        if a.fallback_golden is None:
            raise Inconclusive(f"asset {a.id} has no fallback_golden: cannot prove the fallback "
                               f"model serves")
        self.fallback = Golden.load(a.fallback_golden)
        self.replicas = sorted(self.orchestrator.view().replicas)
        self.backups = sorted(s.name for s in self.lb.servers().values() if s.backup)
        if not self.backups:
            raise Inconclusive("HAProxy has no backup servers: there is no fallback to degrade to")

    def inject(self) -> None:
        for name in self.ctx.asset.nodes:
            host = self.node(name)
            if host.state() != "off":
                host.crash()
                self.broken[name] = "crash"
        for name in self.broken:
            self.node(name).wait_off(5)
        self.ctx.event("fault.site", nodes=",".join(self.broken))

    def detect(self) -> bool:
        servers = self.lb.servers()
        return all(servers[r].down for r in self.replicas)

    def runbook(self) -> list[RunbookStep]:
        return [
            RunbookStep("confirm-fallback", self.confirm_fallback,
                        "backups serve the fallback model's golden outputs"),
            RunbookStep("take-primaries-out-of-rotation", self.take_out, "maint on every primary"),
            RunbookStep("rebuild-site", self.rebuild, "power every node back on"),
            RunbookStep("await-reschedule", self.await_reschedule,
                        "every replica running again on a Ready node"),
            RunbookStep("smoke-test-replicas", self.smoke_test, "golden outputs from each"),
            RunbookStep("switch-back", self.switch_back, "ready on the primaries; UP in HAProxy"),
        ]

    def confirm_fallback(self) -> None:
        servers = self.lb.servers()
        up = [b for b in self.backups if servers[b].up]
        if not up:
            raise StepFailed("no backup server is UP: there is no degraded service")
        got = self.frontend.infer(self.fallback.inputs)
        if got != self.fallback.outputs:
            raise StepFailed("the frontend does not answer with the fallback model's golden "
                             "outputs while the primaries are down")
        self.ctx.event("service.degraded", backups=",".join(up))

    def take_out(self) -> None:
        self.out_of_rotation(self.replicas)

    def rebuild(self) -> None:
        for name in list(self.broken):
            self.node(name).power_on(self.ctx.inventory.step_timeout_s)
            self.ctx.event("node.powered-on", node=name)

    def await_reschedule(self) -> None:
        view = self.wait_placed(self.replicas, avoid=set())
        for name in self.replicas:
            self.check_replica(view.replicas[name])

    def smoke_test(self) -> None:
        view = self.orchestrator.view()
        for name in self.replicas:
            self.smoke(view.replicas[name])

    def switch_back(self) -> None:
        self.back_in_rotation(self.replicas)

    def extra_verify(self) -> None:
        servers = self.lb.servers()
        self.ctx.findings.smoke["fallback_sessions"] = sum(
            servers[b].total_sessions for b in self.backups)

    def extra_marks(self, slo: SLO, rto: float | None) -> dict[str, float | None]:
        """Time to degraded service: from the fault until failures stayed within the SLO's error
        rate for its window, at any latency and any (non-zero) throughput."""
        degraded = SLO(max_error_rate=slo.max_error_rate, max_p95_ms=math.inf,
                       min_throughput_ratio=1e-9, sustain_s=slo.sustain_s)
        at = recovered_at(self.fault_samples, degraded, self.base_rps, self.t0())
        t = None if at is None else round((at - self.t0()).total_seconds(), 3)
        return {"degraded_s": t, "time_to_degraded_s": t,
                "time_to_full_s": None if rto is None else round(rto, 3)}
