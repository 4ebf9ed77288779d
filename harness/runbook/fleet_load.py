"""Load through a fleet drill, and the SLO gate that judges the recovery.

A baseline sample before the fault (the service must meet its SLO then, or the drill could not
tell recovery from normal service), continuous load from before the fault until the service is
back, and an acceptance run afterwards that is a gate (SLO missed: FAIL). The inference RTO is the
time from injection until the SLO held for its sustained window; it goes into the ``load``
evidence section with the per-second availability timeline and the failed-request counts.

The load comes from the frontend's adapter when it makes its own (:class:`~harness.runbook.fleet.
GeneratesLoad`: an in-memory fleet in unit tests), else from :class:`harness.load.LoadRun`, locust
in its own process.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from harness.context import DrillContext
from harness.errors import Inconclusive
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
from harness.runbook.fleet import FleetState, GeneratesLoad, LoadSource, frontend
from harness.runbook.timeline import injected_at, since_injected

#: Scenario-specific marks for the load section: (slo, inference RTO) -> named seconds.
ExtraMarks = Callable[[SLO, "float | None"], dict[str, "float | None"]]


def load_source(ctx: DrillContext, state: FleetState, label: str, duration_s: float) -> LoadSource:
    fe = frontend(ctx)
    profile = ctx.inventory.load.profile(fe.target.url, fe.target.model, state.golden_inputs,
                                         duration_s=duration_s)
    if isinstance(fe, GeneratesLoad):
        return fe.load_source(profile, label)
    # absolute: the worker runs in that directory, and the evidence root may be relative
    log_dir = (ctx.work_dir / ctx.drill_id / f"load-{label}").resolve()
    return LoadRun(profile, log_dir=log_dir)


def baseline_service(ctx: DrillContext, state: FleetState, runbook_steps: int) -> None:
    """Baseline: the golden outputs through the frontend, a load sample that meets the SLO, then
    the continuous load started, bounded so that it stops by itself whatever happens to this
    process."""
    outputs = frontend(ctx).infer(state.golden_inputs)
    if outputs != state.golden_outputs:
        raise Inconclusive("the service's outputs for the golden inputs differ from the golden "
                           "file before the fault")
    ctx.event("baseline.outputs", rows=len(outputs))
    inv = ctx.inventory
    with load_source(ctx, state, "baseline", inv.load.baseline_s) as run:
        samples = run.wait()
    state.base_samples = samples
    state.base_rps = baseline_rps(samples)
    summary = summarize(samples)
    ctx.event("load.baseline", rps=round(state.base_rps, 2),
              failures=int(summary["failures"] or 0))
    if state.base_rps <= 0 or summary["failures"]:
        raise Inconclusive(f"the service is not in service before the fault (baseline: "
                           f"{summary})")
    slo = inv.slo
    held = sum(1 for s in samples if slo_holds(s, slo, state.base_rps))
    if held < len(samples) / 2:
        raise Inconclusive(f"the SLO does not hold even before the fault ({held} of "
                           f"{len(samples)} baseline seconds): the drill could not tell "
                           f"recovery from normal service")
    bound = (inv.detect_timeout_s + runbook_steps * inv.step_timeout_s
             + slo.sustain_s + 2 * RECOVERY_SLACK_S)
    state.load = load_source(ctx, state, "fault", bound)
    state.load.start()
    ctx.clock.sleep(min(2.0, slo.sustain_s))  # a little load before the fault, for the chart
    ctx.event("load.started", bound_s=round(bound, 1))


def _wait_recovered(ctx: DrillContext, state: FleetState, load: LoadSource,
                    slo: SLO) -> datetime | None:
    """Keep the continuous load running until the SLO has held for its window after the fault,
    or the bound (the window plus slack after the runbook ended) passes."""
    t0 = injected_at(ctx)
    end = ctx.clock.mono() + slo.sustain_s + RECOVERY_SLACK_S
    while True:
        at = recovered_at(load.samples(), slo, state.base_rps, t0)
        if at is not None or ctx.clock.mono() >= end or not load.running:
            return at
        ctx.clock.sleep(0.5)


def verify_service(ctx: DrillContext, state: FleetState,
                   before_acceptance: Callable[[], None] | None = None,
                   extra_marks: ExtraMarks | None = None) -> None:
    """The SLO gate: when the service came back under the continuous load (the inference RTO,
    against the target), an acceptance run that must meet the SLO, and the golden outputs
    through the frontend."""
    slo, t0 = ctx.inventory.slo, injected_at(ctx)
    at = None
    if state.load is not None:
        at = _wait_recovered(ctx, state, state.load, slo)
        state.fault_samples = state.load.stop()
        if at is None:  # the last samples arrive on stop
            at = recovered_at(state.fault_samples, slo, state.base_rps, t0)
    if at is not None:
        # journaled when measured; the instant itself is in the detail
        ctx.event("load.recovery.measured", since_t0_s=round((at - t0).total_seconds(), 3))
    if before_acceptance is not None:
        before_acceptance()
    with load_source(ctx, state, "acceptance", ctx.inventory.load.acceptance_s) as run:
        state.acceptance_samples = run.wait()
    acc = summarize(state.acceptance_samples)
    reasons = _gate(acc, slo, state.base_rps)
    rto = None if at is None else (at - t0).total_seconds()
    _record_load(ctx, state, slo, rto, acc, reasons, extra_marks)
    if rto is None:
        ctx.fail(f"inference SLO never held for {slo.sustain_s:g} s after the fault "
                 f"(within {RECOVERY_SLACK_S:g} s slack after the runbook)")
    else:
        target = ctx.inventory.objectives_for(ctx.asset).rto_s
        if rto > target:
            ctx.fail(f"inference RTO {rto:.1f} s exceeds the target {target:g} s")
    for reason in reasons:
        ctx.fail(f"acceptance run missed the SLO: {reason}")
    fe = frontend(ctx)
    outputs = fe.infer(state.golden_inputs)
    same = sum(1 for x, y in zip(outputs, state.golden_outputs, strict=False) if x == y)
    ctx.findings.smoke.update({"golden_inputs": len(state.golden_outputs),
                               "identical_outputs": same, "endpoint": fe.target.url})
    if same != len(state.golden_outputs):
        ctx.fail(f"golden outputs through the frontend: {len(state.golden_outputs) - same} differ")


def _gate(acc: dict[str, float | int | None], slo: SLO, base_rps: float) -> list[str]:
    reasons = []
    if not acc["requests"]:
        return ["no request completed during the acceptance run"]
    err, p95, good = acc["error_rate"], acc["p95_ms"], acc["goodput_rps"]
    if err is not None and err > slo.max_error_rate:
        reasons.append(f"error rate {err:.2%} > {slo.max_error_rate:.2%}")
    if p95 is None or p95 > slo.max_p95_ms:
        reasons.append(f"p95 {p95} ms > {slo.max_p95_ms:g} ms")
    if good is None or good < slo.min_throughput_ratio * base_rps:
        reasons.append(f"throughput {good or 0:.1f} req/s < {slo.min_throughput_ratio:g} x "
                       f"baseline {base_rps:.1f} req/s")
    return reasons


def _record_load(ctx: DrillContext, state: FleetState, slo: SLO, rto: float | None,
                 acc: dict[str, float | int | None], reasons: list[str],
                 extra_marks: ExtraMarks | None) -> None:
    t0 = injected_at(ctx)
    during = [s for s in state.fault_samples if s.end > t0]
    marks = {"fault_s": 0.0, "detected_s": since_injected(ctx, "fault.detected"),
             "switched_s": since_injected(ctx, "traffic.switched"),
             "recovered_s": None if rto is None else round(rto, 3)}
    if extra_marks is not None:
        marks.update(extra_marks(slo, rto))
    everything = [*state.base_samples, *state.fault_samples, *state.acceptance_samples]
    ctx.findings.sections["load"] = {
        # "met"/"summary" are the verdict the JUnit and Markdown renderers read; the rest is
        # the SLO the acceptance run was judged against
        "slo": {"met": not reasons,
                "summary": "acceptance run met the SLO" if not reasons
                else "acceptance run missed the SLO: " + "; ".join(reasons),
                "max_error_rate": slo.max_error_rate, "max_p95_ms": slo.max_p95_ms,
                "min_throughput_ratio": slo.min_throughput_ratio, "sustain_s": slo.sustain_s},
        "baseline_rps": round(state.base_rps, 3),
        "baseline": summarize(state.base_samples),
        "during_fault": summarize(during),
        "acceptance": {**acc, "met": not reasons, "missed": reasons},
        "inference_rto_s": None if rto is None else round(rto, 3),
        "failed_requests": sum(s.failures for s in during),
        "failed_requests_total": sum(s.failures for s in everything),
        "marks": marks,
        "timeline": availability_timeline(everything, t0),
        "phases": {"baseline_s": [_rel(state.base_samples, t0)],
                   "acceptance_s": [_rel(state.acceptance_samples, t0)]},
    }


def _rel(samples: list[SecondSample], t0: datetime) -> list[float]:
    if not samples:
        return []
    start = min(s.utc for s in samples)
    end = max(s.end for s in samples)
    return [round((start - t0).total_seconds(), 3), round((end - t0).total_seconds(), 3)]
