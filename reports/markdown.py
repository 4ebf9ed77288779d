"""``summary.md``: the drill in a few lines, for a CI step summary or a pull-request comment."""

from __future__ import annotations

from typing import Any

from reports.objectives import objective_results

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


def render_markdown(doc: dict[str, Any], report_link: str = "report.html") -> str:
    ex = doc.get("exercise", {})
    lines = [
        (f"### {_ICON[doc['verdict']]} DR drill {doc['verdict']}: "
        f"{_cell(ex.get('title') or doc['scenario'])}"),
        "",
        (f"`{doc['drill_id']}` · scenario `{doc['scenario']}` ({doc['variant']}) · asset "
        f"`{doc['asset']}` (tier {doc['tier']}) · site `{doc['site']}`"),
        "",
        "| objective | measured | target | result |",
        "| --- | --- | --- | --- |",
    ]
    for name in ("rto", "rpo"):
        o = doc[name]
        met = {True: "met", False: "**missed**", None: "not measured"}[o["met"]]
        if o.get("error"):
            met = f"**error**: {_cell(o['error'])}"
        label = name.upper() + (f" ({o['definition']})" if o.get("definition") else "")
        lines.append(f"| {label} | {seconds(o['measured_s'])} | {seconds(o['target_s'])} "
                     f"| {met} |")
    lines += ["", "| check | result | detail |", "| --- | --- | --- |"]
    for r in objective_results(doc):
        if r.name in ("RTO", "RPO"):
            continue
        lines.append(f"| {r.name} | {_ICON[r.status]} {r.status} | {_cell(r.message)} |")
    if doc.get("reasons"):
        lines += ["", "**Reasons**", ""] + [f"- {_cell(r)}" for r in doc["reasons"]]
    deviations = [f for f in doc.get("findings", []) if f.get("severity") == "deviation"]
    if deviations:
        lines += ["", "**Deviations**", ""] + [f"- {_cell(f['summary'])}" for f in deviations]
    open_actions = [f for f in doc.get("findings", []) if f.get("corrective_action") is None]
    if doc.get("findings"):
        lines += ["", (f"Findings: {len(doc['findings'])} ({len(open_actions)} without a "
                      f"corrective action yet).")]
    lines += ["", (f"Full report: [{report_link}]({report_link}) · evidence: `evidence.json` "
                  "(checked by `drillbook verify`)"), ""]
    return "\n".join(lines)
