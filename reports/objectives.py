"""The drill's objectives as the reports show them, read from the evidence's ``objectives`` list.

A drill has one verdict; a CI system wants one test case per objective so a red build says which
objective was missed. The list is judged once, when the evidence is built
(``harness/verdict.py``: RTO, RPO, integrity, smoke, one per declared SLO, revert, host checks),
and the verdict is derived from it; every renderer (JUnit, Markdown, HTML) reads that same list
plus the overall verdict, so a report cannot show a missed objective beside a PASS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.errors import UsageError


@dataclass(frozen=True)
class ObjectiveResult:
    name: str
    status: str  # "PASS" | "FAIL" | "INCONCLUSIVE"
    message: str
    seconds: float | None = None


def verdict_message(doc: dict[str, Any]) -> str:
    reasons = "; ".join(doc.get("reasons", []))
    if reasons:
        return reasons
    deviations = [f for f in doc.get("findings", []) if f.get("severity") == "deviation"]
    if deviations:
        return (f"every objective met, with {len(deviations)} deviation(s): "
                + "; ".join(f["summary"] for f in deviations))
    return "every objective met"


def objective_results(doc: dict[str, Any]) -> list[ObjectiveResult]:
    """The evidence's objectives, then the overall verdict (the worst of them and the findings)."""
    if "objectives" not in doc:
        raise UsageError(f"evidence {doc.get('drill_id', '?')} has no objectives list: it was "
                         f"written by an older drillbook; run the drill again")
    out = [ObjectiveResult(o["name"], o["status"], o["message"], o["measured_s"])
           for o in doc["objectives"]]
    out.append(ObjectiveResult("verdict", doc["verdict"], verdict_message(doc)))
    return out
