"""The evidence of one drill, built from what its run recorded.

RTO (the service and the verified figures) and RPO are computed from the journal's events, every
objective is judged in one list (harness/verdict.py), and the verdict is derived from that list;
the audit record gets the scenario's deviations as findings. Used by the runner at the end of a
drill and by ``drillbook recover`` to close an orphan's evidence.
"""

from __future__ import annotations

import dataclasses
import functools
import platform
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from harness.context import DrillContext
from harness.hosts import drill as host_checks
from harness.model import (
    AuditRecord,
    Evidence,
    Finding,
    Objective,
    TimelineEntry,
    Verdict,
    VerifiedRto,
    event_by_name,
    measure_rpo,
    measure_rto,
    rto_breakdown,
)
from harness.provenance import audit_record
from harness.scenario import Scenario
from harness.verdict import Judgement, Recorded, judge

if TYPE_CHECKING:
    # the request is the runner's; only its type is needed here
    from harness.runner import DrillRequest


def build_evidence(ctx: DrillContext, req: DrillRequest, started: datetime, *,
                   scenario: Scenario | None = None, overrides: list[str] | None = None) -> Evidence:
    """The evidence of a drill: RTO (service and verified figures) and RPO computed from the
    journal, every objective judged in one list, and the verdict derived from that list
    (harness/verdict.py)."""
    events = ctx.journal.events
    targets = ctx.inventory.objectives_for(ctx.asset)
    point = ctx.findings.restore_point
    measured = measure_rto(events)
    rto = Objective.of_rto(measured, targets.rto_s)
    rto_verified = VerifiedRto.of(measured)
    rpo = Objective.of_rpo(measure_rpo(events, point), targets.rpo_s)
    smoke, sections = ctx.findings.smoke_result(), ctx.findings.all_sections()
    judgement = judge(rto, rpo, Recorded(
        events=events, integrity=ctx.journal.integrity, smoke=smoke,
        sections=sections, reverted=ctx.findings.reverted,
        failures=ctx.findings.failures, inconclusive=ctx.findings.inconclusive,
        host_checks=host_checks.recorded(ctx)), rto_verified)
    t0 = event_by_name(events, "fault.injected")
    timeline = tuple(
        TimelineEntry(e.name, e.utc, None if t0 is None else e.mono - t0.mono)
        for e in events if not e.name.startswith("phase."))
    audit = audit_record(
        inventory=ctx.inventory, asset=ctx.asset, scenario_cls=req.scenario,
        steps=[] if scenario is None else [(s.name, s.summary) for s in scenario.runbook()],
        events=events, journal_steps=ctx.journal.steps, given=req.exercise, started=started,
        default_title=f"{req.scenario.name} ({req.variant}) on {ctx.asset.id}",
        overrides=list(overrides or []), dry_run=req.dry_run,
        failures=list(ctx.findings.failures), inconclusive=list(ctx.findings.inconclusive))
    return Evidence(
        drill_id=ctx.drill_id, scenario=req.scenario.name, variant=req.variant,
        asset=ctx.asset.id, tier=ctx.asset.tier, site=ctx.inventory.site,
        verdict=judgement.verdict, reasons=judgement.reasons, rto=rto, rpo=rpo,
        started=started, finished=ctx.clock.utc(),
        timeline=timeline, steps=tuple(ctx.journal.steps), integrity=tuple(ctx.journal.integrity),
        restore_point=point, smoke=smoke,
        rto_breakdown=rto_breakdown(events, ctx.journal.steps), reverted=ctx.findings.reverted,
        inventory=str(ctx.inventory.path), versions=_versions(),
        sections=sections, objectives=judgement.objectives,
        audit=_with_deviations(dataclasses.replace(audit, scope=dataclasses.replace(
            audit.scope, params=ctx.params.to_json())), ctx.findings.deviations, judgement),
        rto_verified=rto_verified, host_checks=host_checks.recorded(ctx),
    )


def _with_deviations(audit: AuditRecord, deviations: list[str],
                     judgement: Judgement) -> AuditRecord:
    """Add the scenario's recorded deviations (a rejected restore point, a fallback, a slow
    store) and the objectives missed on their own measurement as findings, numbered after the
    drill's own."""
    known = {f.summary for f in audit.findings}
    extra = [("fail", r) for r in judgement.reasons
             if r not in known and judgement.verdict is Verdict.FAIL]
    extra += [("deviation", d) for d in deviations]
    findings = list(audit.findings)
    for severity, text in extra:
        if text in known:
            continue
        known.add(text)
        findings.append(Finding(f"F{len(findings) + 1}", severity, text, "drill"))
    return dataclasses.replace(audit, findings=tuple(findings),
                               deviations=audit.deviations + tuple(dict.fromkeys(deviations)))


def _versions() -> dict[str, str]:
    return dict(_versions_once())


@functools.cache
def _versions_once() -> dict[str, str]:
    # once per process: the packages a process runs were imported at its start (and each
    # lookup walks every installed distribution's metadata)
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("drillbook", "boto3", "botocore"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
