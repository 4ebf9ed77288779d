"""The drill's objectives judged one by one, for the JUnit and Markdown renderers.

A drill has one verdict; a CI system wants one test case per objective so a red build says which
objective was missed. :func:`objective_results` turns an evidence document into RTO, RPO,
integrity, smoke, one SLO per section that declares one, revert, and the overall verdict. Each is
PASS, FAIL or INCONCLUSIVE with a message; an objective that could not be judged is never PASS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ObjectiveResult:
    name: str
    status: str  # "PASS" | "FAIL" | "INCONCLUSIVE"
    message: str
    seconds: float | None = None


def _unmeasured(doc: dict[str, Any]) -> str:
    # with a FAIL verdict an unmeasured RTO means recovery never got verified: a failure
    return "FAIL" if doc["verdict"] == "FAIL" else "INCONCLUSIVE"


def _time_objective(name: str, o: dict[str, Any], doc: dict[str, Any]) -> ObjectiveResult:
    if o["measured_s"] is None or o["met"] is None:
        return ObjectiveResult(name, _unmeasured(doc),
                               f"{name} not measured (target {o['target_s']:g} s)")
    status = "PASS" if o["met"] else "FAIL"
    word = "within" if o["met"] else "exceeds"
    return ObjectiveResult(name, status, f"{name} {o['measured_s']:.3f} s {word} target "
                                         f"{o['target_s']:g} s", o["measured_s"])


def _integrity(doc: dict[str, Any]) -> ObjectiveResult:
    checks = [c for c in doc.get("integrity", []) if c["phase"] == "verify"] or \
        doc.get("integrity", [])
    if not checks:
        return ObjectiveResult("integrity", _unmeasured(doc), "no integrity check ran")
    bad = [c["object"] for c in checks if not c["ok"]]
    if bad:
        return ObjectiveResult("integrity", "FAIL", f"{len(bad)} of {len(checks)} objects do "
                                                    f"not match the manifest: {', '.join(bad[:5])}")
    return ObjectiveResult("integrity", "PASS", f"{len(checks)} objects match their SHA-256")


def _smoke(doc: dict[str, Any]) -> ObjectiveResult:
    smoke = doc.get("smoke", {})
    if isinstance(smoke.get("passed"), bool):
        return ObjectiveResult("smoke", "PASS" if smoke["passed"] else "FAIL",
                               str(smoke.get("summary", "smoke test")))
    total, same = smoke.get("golden_inputs"), smoke.get("identical_outputs")
    if isinstance(total, int) and isinstance(same, int) and total > 0:
        if same == total:
            return ObjectiveResult("smoke", "PASS", f"{same} of {total} golden outputs identical")
        return ObjectiveResult("smoke", "FAIL", f"{total - same} of {total} golden outputs differ")
    why = next((str(v) for v in smoke.values() if isinstance(v, str) and "not run" in v), None)
    return ObjectiveResult("smoke", _unmeasured(doc), why or "smoke test did not run")


def _slos(doc: dict[str, Any]) -> list[ObjectiveResult]:
    out = []
    for name, section in sorted(doc.get("sections", {}).items()):
        slo = section.get("slo") if isinstance(section, dict) else None
        if not isinstance(slo, dict) or "met" not in slo:
            continue
        met = slo["met"]
        status = "PASS" if met is True else "FAIL" if met is False else "INCONCLUSIVE"
        out.append(ObjectiveResult(f"slo:{name}", status,
                                   str(slo.get("summary") or f"SLO of section {name}")))
    return out


def objective_results(doc: dict[str, Any]) -> list[ObjectiveResult]:
    out = [_time_objective("RTO", doc["rto"], doc), _time_objective("RPO", doc["rpo"], doc)]
    # integrity and smoke are objectives of the scenarios that record them; a passing drill of a
    # scenario that has none (nothing to hash, no endpoint) does not grow a check it never had,
    # while a drill that stopped before them shows them as not reached
    if doc.get("integrity") or doc["verdict"] != "PASS":
        out.append(_integrity(doc))
    if doc.get("smoke") or doc["verdict"] != "PASS":
        out.append(_smoke(doc))
    out += _slos(doc)
    out.append(ObjectiveResult("revert", "PASS" if doc["reverted"] else _unmeasured(doc),
                               "target left as found" if doc["reverted"]
                               else "revert did not complete (or never ran)"))
    reasons = "; ".join(doc.get("reasons", [])) or "every objective met"
    out.append(ObjectiveResult("verdict", doc["verdict"], reasons))
    return out
