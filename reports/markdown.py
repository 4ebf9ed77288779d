"""``summary.md``: the drill in a few lines, for a CI step summary or a pull-request comment."""

from __future__ import annotations

from harness.model import Evidence, Objective
from reports.objectives import deviations, objective_results

_ICON = {"PASS": "✅", "FAIL": "❌", "INCONCLUSIVE": "⚠️"}


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def seconds(value: float | None) -> str:
    if value is None:
        return "not measured"
    if value < 120:
        return f"{value:.2f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.1f} h"


def _met(o: Objective) -> str:
    if o.error:
        return f"**error**: {_cell(o.error)}"
    return {True: "met", False: "**missed**", None: "not measured"}[o.met]


def rto_label(ev: Evidence) -> str:
    """What the judged RTO figure is: the service RTO, or (older evidence) the verified one."""
    if ev.rto_verified is None:
        return "RTO (verified)"
    return "RTO, service" + (f" ({ev.rto.definition})" if ev.rto.definition else "")


def render_markdown(ev: Evidence, report_link: str = "report.html") -> str:
    title = ev.audit.exercise.title if ev.audit is not None else ev.scenario
    lines = [
        f"### {_ICON[ev.verdict.value]} DR drill {ev.verdict.value}: {_cell(title)}",
        "",
        (f"`{ev.drill_id}` · scenario `{ev.scenario}` ({ev.variant}) · asset "
         f"`{ev.asset}` (tier {ev.tier}) · site `{ev.site}`"),
        "",
        "| objective | measured | target | result |",
        "| --- | --- | --- | --- |",
        (f"| {rto_label(ev)} | {seconds(ev.rto.measured_s)} | {seconds(ev.rto.target_s)} "
        f"| {_met(ev.rto)} |"),
    ]
    if ev.rto_verified is not None:
        lines += [(f"| RTO, verified (not judged) | {seconds(ev.rto_verified.measured_s)} | | "
                  f"shown beside |"),
                  (f"| verification time | {seconds(ev.rto_verified.verification_s)} | | "
                  f"shown beside |")]
    label = "RPO" + (f" ({ev.rpo.definition})" if ev.rpo.definition else "")
    lines.append(f"| {label} | {seconds(ev.rpo.measured_s)} | {seconds(ev.rpo.target_s)} "
                 f"| {_met(ev.rpo)} |")
    lines += ["", "| check | result | detail |", "| --- | --- | --- |"]
    for r in objective_results(ev):
        if r.name in ("RTO", "RPO"):
            continue
        lines.append(f"| {r.name} | {_ICON[r.status]} {r.status} | {_cell(r.message)} |")
    if ev.reasons:
        lines += ["", "**Reasons**", ""] + [f"- {_cell(r)}" for r in ev.reasons]
    devs = deviations(ev)
    if devs:
        lines += ["", "**Deviations**", ""] + [f"- {_cell(d)}" for d in devs]
    findings = () if ev.audit is None else ev.audit.findings
    if findings:
        open_actions = [f for f in findings if f.corrective_action is None]
        lines += ["", (f"Findings: {len(findings)} ({len(open_actions)} without a "
                       f"corrective action yet).")]
    if ev.rto_verified is not None:
        lines += ["", ("The RTO objective is judged on the service RTO: fault injected until "
                       "the service was back, counted only because the verification after it "
                       "passed. The verified RTO (until that verification ended) and the "
                       "verification's own time are shown beside it.")]
    lines += ["", (f"Full report: [{report_link}]({report_link}) · evidence: `evidence.json` "
                   "(checked by `drillbook verify`)"), ""]
    return "\n".join(lines)
