"""Load through a cluster's service during a kube drill, and the SLO gate after it.

:class:`ServiceLoad` is what the kube scenarios compose for traffic: before the fault, the golden
outputs through the service and a baseline load sample (the service must meet its SLO); from
before the fault until recovery, continuous load (locust in its own process,
:class:`harness.load.LoadRun`: the harness never imports locust); after recovery, the time the
SLO held again (the inference RTO), an acceptance run that is a gate (missed: FAIL) and the golden
outputs again. Everything goes into the ``load`` evidence section, whose ``slo`` entry is an
objective. Requests go to the inventory's ``served_by`` URL: on the lab, the LoadBalancer
Service's address, forwarded to the pods' ready endpoints.
"""

from __future__ import annotations

import math
import time
from datetime import datetime

from harness.context import DrillContext
from harness.errors import Inconclusive
from harness.golden import GoldenPair as Golden
from harness.load import (
    RECOVERY_SLACK_S,
    SLO,
    LoadRun,
    SecondSample,
    availability_timeline,
    baseline_rps,
    recovered_at,
    slo_holds,
    summarize,
)
from harness.model import event_by_name
from harness.targets.protocols import EndpointAPI


class ServiceLoad:
    """Baseline, continuous load through the fault, recovery time, acceptance gate."""

    def __init__(self, ctx: DrillContext, endpoint: EndpointAPI, golden: Golden,
                 steps: int) -> None:
        self.ctx, self.endpoint, self.golden, self.steps = ctx, endpoint, golden, steps
        self.base: list[SecondSample] = []
        self.base_rps = 0.0
        self.run: LoadRun | None = None
        self.fault: list[SecondSample] = []
        self.acceptance: list[SecondSample] = []

    def _load_run(self, label: str, duration_s: float) -> LoadRun:
        fe = self.endpoint.target
        profile = self.ctx.inventory.load.profile(fe.url, fe.model, self.golden.inputs,
                                                  duration_s=duration_s)
        log_dir = (self.ctx.work_dir / self.ctx.drill_id / f"load-{label}").resolve()
        return LoadRun(profile, log_dir=log_dir)

    def baseline(self) -> None:
        if self.endpoint.infer(self.golden.inputs) != self.golden.outputs:
            raise Inconclusive("the service's outputs for the golden inputs differ from the "
                               "golden file before the fault")
        with self._load_run("baseline", self.ctx.inventory.load.baseline_s) as run:
            self.base = run.wait()
        self.base_rps = baseline_rps(self.base)
        summary = summarize(self.base)
        self.ctx.event("load.baseline", rps=round(self.base_rps, 2),
                       failures=int(summary["failures"] or 0))
        slo = self.ctx.inventory.slo
        if self.base_rps <= 0 or summary["failures"]:
            raise Inconclusive(f"the service is not in service before the fault: {summary}")
        held = sum(1 for s in self.base if slo_holds(s, slo, self.base_rps))
        if held < len(self.base) / 2:
            raise Inconclusive(f"the SLO does not hold before the fault ({held} of "
                               f"{len(self.base)} baseline seconds)")

    def start(self) -> None:
        """Continuous load, bounded so that it stops by itself whatever happens here."""
        inv, slo = self.ctx.inventory, self.ctx.inventory.slo
        bound = (inv.detect_timeout_s + self.steps * inv.step_timeout_s + slo.sustain_s
                 + 2 * RECOVERY_SLACK_S)
        self.run = self._load_run("fault", bound)
        self.run.start()
        time.sleep(min(2.0, slo.sustain_s))  # some load before the fault, for the timeline
        self.ctx.event("load.started", bound_s=round(bound, 1))

    def t0(self) -> datetime:
        ev = event_by_name(self.ctx.journal.events, "fault.injected")
        assert ev is not None
        return ev.utc

    def stop(self) -> None:
        if self.run is not None and self.run.running:
            self.fault = self.run.stop()

    def verify(self, *, degraded: bool = False) -> None:
        """The SLO gate: recovery time, acceptance run, golden outputs through the service."""
        slo = self.ctx.inventory.slo
        at = self._wait_recovered(slo)
        self.ctx.event("load.recovery.measured", since_t0_s=None if at is None
                       else round((at - self.t0()).total_seconds(), 3))
        with self._load_run("acceptance", self.ctx.inventory.load.acceptance_s) as run:
            self.acceptance = run.wait()
        acc = summarize(self.acceptance)
        reasons = self._gate(acc, slo)
        rto = None if at is None else (at - self.t0()).total_seconds()
        self._record(slo, rto, acc, reasons, degraded)
        if rto is None:
            self.ctx.fail(f"inference SLO never held for {slo.sustain_s:g} s after the fault")
        else:
            target = self.ctx.inventory.objectives_for(self.ctx.asset).rto_s
            if rto > target:
                self.ctx.fail(f"inference RTO {rto:.1f} s exceeds the target {target:g} s")
        for reason in reasons:
            self.ctx.fail(f"acceptance run missed the SLO: {reason}")
        got = self.endpoint.infer(self.golden.inputs)
        same = sum(1 for x, y in zip(got, self.golden.outputs, strict=False) if x == y)
        smoke = self.ctx.findings.smoke
        ok = same == len(self.golden.outputs)
        smoke.update({"golden_inputs": len(self.golden.outputs), "identical_outputs": same,
                      "endpoint": self.endpoint.target.url,
                      "passed": bool(smoke.get("passed", True)) and ok,
                      "summary": f"{smoke.get('summary', '')}; {same} of "
                                 f"{len(self.golden.outputs)} golden outputs identical through "
                                 f"{self.endpoint.target.url}".lstrip("; ")})
        if not ok:
            self.ctx.fail(f"golden outputs through the service: "
                          f"{len(self.golden.outputs) - same} differ")

    def since(self, samples: list[SecondSample], slo: SLO) -> datetime:
        """Where recovery is looked for: after the fault was detected and after the last
        second that missed the SLO before the runbook finished. A cluster fault can take
        seconds to hurt the service (NotReady after missed heartbeats, eviction after the
        toleration time, a cordon the runbook makes): a window that held before the damage
        is not a recovery."""
        events = self.ctx.journal.events
        detected = event_by_name(events, "fault.detected")
        done = event_by_name(events, "recovery.completed")
        start = max(self.t0(), detected.utc if detected else self.t0())
        limit = done.utc if done else None
        for smp in samples:
            if (smp.utc >= self.t0() and (limit is None or smp.utc <= limit)
                    and not slo_holds(smp, slo, self.base_rps)):
                start = max(start, smp.end)
        return start

    def _wait_recovered(self, slo: SLO) -> datetime | None:
        assert self.run is not None
        end = self.ctx.clock.mono() + slo.sustain_s + RECOVERY_SLACK_S
        while True:
            got = self.run.samples()
            at = recovered_at(got, slo, self.base_rps, self.since(got, slo))
            if at is not None or self.ctx.clock.mono() >= end or not self.run.running:
                break
            self.ctx.clock.sleep(0.5)
        self.fault = self.run.stop()
        return at if at is not None else recovered_at(self.fault, slo, self.base_rps,
                                                      self.since(self.fault, slo))

    def _gate(self, acc: dict[str, float | int | None], slo: SLO) -> list[str]:
        if not acc["requests"]:
            return ["no request completed during the acceptance run"]
        reasons = []
        err, p95, good = acc["error_rate"], acc["p95_ms"], acc["goodput_rps"]
        if err is not None and err > slo.max_error_rate:
            reasons.append(f"error rate {err:.2%} > {slo.max_error_rate:.2%}")
        if p95 is None or p95 > slo.max_p95_ms:
            reasons.append(f"p95 {p95} ms > {slo.max_p95_ms:g} ms")
        if good is None or good < slo.min_throughput_ratio * self.base_rps:
            reasons.append(f"throughput {good or 0:.1f} req/s < {slo.min_throughput_ratio:g} x "
                           f"baseline {self.base_rps:.1f} req/s")
        return reasons

    def degraded_at(self, slo: SLO) -> float | None:
        """Seconds from the fault until failures stayed within the SLO's error rate for its
        window, at any latency and any non-zero throughput (service degraded, not down)."""
        loose = SLO(max_error_rate=slo.max_error_rate, max_p95_ms=math.inf,
                    min_throughput_ratio=1e-9, sustain_s=slo.sustain_s)
        at = recovered_at(self.fault, loose, self.base_rps, self.t0())
        return None if at is None else round((at - self.t0()).total_seconds(), 3)

    def _record(self, slo: SLO, rto: float | None, acc: dict[str, float | int | None],
                reasons: list[str], degraded: bool) -> None:
        t0 = self.t0()
        during = [s for s in self.fault if s.end > t0]
        marks: dict[str, float | None] = {
            "fault_s": 0.0, "recovered_s": None if rto is None else round(rto, 3),
            "recovery_searched_from_s": round(
                (self.since(self.fault, slo) - t0).total_seconds(), 3),
            "slo_missed_seconds": sum(1 for x in during
                                      if not slo_holds(x, slo, self.base_rps))}
        if degraded:
            marks["degraded_s"] = self.degraded_at(slo)
        self.ctx.findings.sections["load"] = {
            "slo": {"met": not reasons,
                    "summary": "acceptance run met the SLO" if not reasons
                    else "acceptance run missed the SLO: " + "; ".join(reasons),
                    "max_error_rate": slo.max_error_rate, "max_p95_ms": slo.max_p95_ms,
                    "min_throughput_ratio": slo.min_throughput_ratio,
                    "sustain_s": slo.sustain_s},
            "endpoint": self.endpoint.target.url,
            "baseline_rps": round(self.base_rps, 3),
            "baseline": summarize(self.base),
            "during_fault": summarize(during),
            "acceptance": {**acc, "met": not reasons, "missed": reasons},
            "inference_rto_s": None if rto is None else round(rto, 3),
            "failed_requests": sum(s.failures for s in during),
            "marks": marks,
            "timeline": availability_timeline([*self.base, *self.fault, *self.acceptance], t0),
        }
