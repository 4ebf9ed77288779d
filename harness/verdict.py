"""The verdict, derived from one typed list of objectives.

:func:`judge` turns what a drill recorded (events, integrity checks, smoke results, the sections'
declared SLOs, revert, the scenario's own findings) into :class:`~harness.model.ObjectiveResult`
entries (RTO, RPO, integrity, smoke, one per SLO a section declares, revert, each host check),
and the verdict is the worst of those and of the findings:

    any FAIL (objective or finding)          -> FAIL
    else any INCONCLUSIVE (or not measured)  -> INCONCLUSIVE
    else                                     -> PASS

The reports (JUnit, Markdown, HTML) render the same list from the evidence, so a missed objective
the verdict ignores, or a red JUnit case beside a PASS, cannot happen.

The RTO objective is judged on the *service* RTO (fault until the service was back, valid only
because the verification after it passed: harness/model/rto.py); its result carries the verified
RTO and the verification's duration too, and its message names all three, so every report that
shows the list shows both figures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.model import (
    Event,
    HostCheck,
    IntegrityCheck,
    Objective,
    ObjectiveKind,
    ObjectiveResult,
    Phase,
    Section,
    SmokeResult,
    Verdict,
    VerifiedRto,
    event_by_name,
)

_RANK = {Verdict.PASS: 0, Verdict.INCONCLUSIVE: 1, Verdict.FAIL: 2}


@dataclass(frozen=True)
class Judgement:
    objectives: tuple[ObjectiveResult, ...]
    verdict: Verdict
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Recorded:
    """What a drill recorded that objectives are judged from."""

    events: list[Event] | tuple[Event, ...]
    integrity: Sequence[IntegrityCheck]
    smoke: SmokeResult
    sections: Mapping[str, Section]
    reverted: bool
    failures: Sequence[str]
    inconclusive: Sequence[str]
    host_checks: Sequence[HostCheck] = ()


def _not_reached(rec: Recorded) -> Verdict:
    # a drill whose recovery failed never reached the later checks: they failed with it
    return Verdict.FAIL if rec.failures else Verdict.INCONCLUSIVE


def _timed(name: str, kind: ObjectiveKind, o: Objective, rec: Recorded) -> ObjectiveResult:
    if o.error is not None:
        return ObjectiveResult(name, kind, Verdict.FAIL, f"{name} not measurable: {o.error}",
                               None, o.target_s)
    definition = f" ({o.definition})" if o.definition else ""
    note = f"; {o.note}" if o.note else ""
    if o.measured_s is None or o.met is None:
        return ObjectiveResult(name, kind, _not_reached(rec),
                               f"{name}{definition} not measured (target {o.target_s:g} s){note}",
                               None, o.target_s)
    word = "within" if o.met else "exceeds"
    return ObjectiveResult(name, kind, Verdict.PASS if o.met else Verdict.FAIL,
                           f"{name}{definition} {o.measured_s:.3f} s {word} target "
                           f"{o.target_s:g} s{note}", o.measured_s, o.target_s)


def _integrity(rec: Recorded) -> ObjectiveResult:
    checks = [c for c in rec.integrity if c.phase is Phase.VERIFY] or list(rec.integrity)
    kind = ObjectiveKind.INTEGRITY
    if not checks:
        return ObjectiveResult("integrity", kind, _not_reached(rec), "no integrity check ran")
    bad = [c.object for c in checks if not c.ok]
    if bad:
        return ObjectiveResult("integrity", kind, Verdict.FAIL,
                               f"{len(bad)} of {len(checks)} objects do not match the manifest: "
                               f"{', '.join(bad[:5])}")
    return ObjectiveResult("integrity", kind, Verdict.PASS,
                           f"{len(checks)} objects match their SHA-256")


def _smoke(rec: Recorded) -> ObjectiveResult:
    passed, message = rec.smoke.judged()
    status = _not_reached(rec) if passed is None else Verdict.PASS if passed else Verdict.FAIL
    return ObjectiveResult("smoke", ObjectiveKind.SMOKE, status, message)


def _slos(rec: Recorded) -> list[ObjectiveResult]:
    out = []
    for name, section in sorted(rec.sections.items()):
        slo = section.slo
        if slo is None:
            continue
        status = (Verdict.PASS if slo.met is True else Verdict.FAIL if slo.met is False
                  else Verdict.INCONCLUSIVE)
        out.append(ObjectiveResult(f"slo:{name}", ObjectiveKind.SLO, status,
                                   slo.summary or f"SLO of section {name}"))
    return out


def host_objective(h: HostCheck) -> ObjectiveResult:
    """A host check as an objective: met is PASS; missed in preflight is INCONCLUSIVE (the
    drill stopped before touching anything, so it proves nothing), missed in verify is FAIL;
    a check that could not run is INCONCLUSIVE."""
    status = (Verdict.PASS if h.ok else Verdict.INCONCLUSIVE
              if h.ok is None or h.phase is Phase.PREFLIGHT else Verdict.FAIL)
    word = "ok" if h.ok else "could not run" if h.ok is None else "missed"
    return ObjectiveResult(f"host:{h.phase.value}:{h.host}:{h.check}", ObjectiveKind.HOST_CHECK,
                           status, f"{h.host}: {h.check}: {word}: expected {h.expected}, "
                                   f"found {h.found}")


def _rto(rto: Objective, rec: Recorded, verified: VerifiedRto | None) -> ObjectiveResult:
    """The RTO objective on the service figure, with the verified figure beside it."""
    result = _timed("RTO", ObjectiveKind.RTO, rto, rec)
    if verified is None or (verified.measured_s is None and verified.verification_s is None):
        return result
    beside = []
    if verified.measured_s is not None:
        beside.append(f"verified RTO {verified.measured_s:.3f} s")
    if verified.verification_s is not None:
        beside.append(f"verification took {verified.verification_s:.3f} s")
    return dataclasses.replace(result, message=f"{result.message}; {', '.join(beside)}",
                               verified_s=verified.measured_s,
                               verification_s=verified.verification_s)


def objective_list(rto: Objective, rpo: Objective, rec: Recorded,
                   rto_verified: VerifiedRto | None = None) -> list[ObjectiveResult]:
    """Every objective of this drill, judged. Integrity and smoke belong to the scenarios that
    record them: a verified recovery of a scenario with nothing to hash does not grow a check it
    never had, while a drill that stopped before them shows them as not reached."""
    verified = event_by_name(rec.events, "recovery.verified") is not None
    out = [_rto(rto, rec, rto_verified), _timed("RPO", ObjectiveKind.RPO, rpo, rec)]
    if rec.integrity or not verified:
        out.append(_integrity(rec))
    if rec.smoke.recorded or not verified:
        out.append(_smoke(rec))
    out += _slos(rec)
    out += [host_objective(h) for h in rec.host_checks]
    injected = event_by_name(rec.events, "fault.injected") is not None
    if rec.reverted:
        out.append(ObjectiveResult("revert", ObjectiveKind.REVERT, Verdict.PASS,
                                   "target left as found"))
    else:
        out.append(ObjectiveResult(
            "revert", ObjectiveKind.REVERT, Verdict.FAIL if injected else _not_reached(rec),
            "revert did not complete: the target may not be as found" if injected
            else "revert did not run: no fault was injected"))
    return out


def judge(rto: Objective, rpo: Objective, rec: Recorded,
          rto_verified: VerifiedRto | None = None) -> Judgement:
    """The objective list, the verdict (worst of the list and of the findings) and its reasons:
    the scenario's findings first, then every objective missed on its own measurement. ``rto``
    is judged (the service RTO); ``rto_verified`` is shown beside it."""
    objectives = objective_list(rto, rpo, rec, rto_verified)
    worst = max([o.status for o in objectives], key=_RANK.__getitem__)
    if rec.failures:
        worst = Verdict.FAIL
    elif rec.inconclusive and worst is Verdict.PASS:
        worst = Verdict.INCONCLUSIVE
    reasons = list(rec.failures)
    # a measurement that missed its target is a reason in its own right; an objective that only
    # shows a failure already given (not reached) is not repeated
    for o in objectives:
        if o.status is Verdict.FAIL and _own_failure(o, rec) and not _said(o, reasons):
            reasons.append(_reason(o))
    reasons += rec.inconclusive
    if worst is Verdict.INCONCLUSIVE and not rec.inconclusive:
        reasons += [_reason(o) for o in objectives if o.status is Verdict.INCONCLUSIVE]
    return Judgement(tuple(objectives), worst, tuple(reasons))


def _said(o: ObjectiveResult, reasons: list[str]) -> bool:
    """Whether a finding already gives this objective's failure (a scenario that ctx.fail()s
    and records the same SLO, in its own words)."""
    return any(o.message in r or r in o.message for r in reasons)


def _reason(o: ObjectiveResult) -> str:
    return o.message if o.message.startswith(o.name) else f"{o.name}: {o.message}"


def _own_failure(o: ObjectiveResult, rec: Recorded) -> bool:
    if o.kind in (ObjectiveKind.RTO, ObjectiveKind.RPO):
        return o.measured_s is not None or "not measurable" in o.message
    if o.kind in (ObjectiveKind.SLO, ObjectiveKind.HOST_CHECK):
        return True
    # integrity, smoke and revert failures are reported by the scenario or the runner as findings
    return not rec.failures
