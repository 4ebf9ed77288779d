"""The drill's objectives as the reports show them, read from the evidence's objective list.

A drill has one verdict; a CI system wants one test case per objective so a red build says which
objective was missed. The list is judged once, when the evidence is built
(``harness/verdict.py``: RTO, RPO, integrity, smoke, one per declared SLO, revert, host checks),
and the verdict is derived from it; every renderer (JUnit, Markdown, HTML) reads that same list
plus the overall verdict, so a report cannot show a missed objective beside a PASS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.model import Evidence, ObjectiveKind


@dataclass(frozen=True)
class ObjectiveResult:
    name: str
    status: str  # "PASS" | "FAIL" | "INCONCLUSIVE"
    message: str
    seconds: float | None = None
    #: the RTO's second figure and the verification's duration (None for other objectives)
    verified_s: float | None = None
    verification_s: float | None = None


def evidence_of(ev: Evidence | Mapping[str, Any]) -> Evidence:
    """The evidence model; a document (evidence.json read as JSON) is read into it first, and
    one that does not match (written by an older drillbook, malformed) is refused by name."""
    return ev if isinstance(ev, Evidence) else Evidence.from_json(ev)


def deviations(ev: Evidence) -> list[str]:
    findings = () if ev.audit is None else ev.audit.findings
    return [f.summary for f in findings if f.severity == "deviation"]


def verdict_message(ev: Evidence) -> str:
    reasons = "; ".join(ev.reasons)
    if reasons:
        return reasons
    devs = deviations(ev)
    if devs:
        return f"every objective met, with {len(devs)} deviation(s): " + "; ".join(devs)
    return "every objective met"


def objective_results(ev: Evidence | Mapping[str, Any]) -> list[ObjectiveResult]:
    """The evidence's objectives, then the overall verdict (the worst of them and the findings)."""
    ev = evidence_of(ev)
    out = [ObjectiveResult(o.name, o.status.value, o.message, o.measured_s,
                           o.verified_s if o.kind is ObjectiveKind.RTO else None,
                           o.verification_s if o.kind is ObjectiveKind.RTO else None)
           for o in ev.objectives]
    out.append(ObjectiveResult("verdict", ev.verdict.value, verdict_message(ev)))
    return out
