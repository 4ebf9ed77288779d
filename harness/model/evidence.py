"""The evidence of one drill (:class:`Evidence`), in the shape ``evidence.json`` has, and read
back from it exactly: ``Evidence.from_json(doc).to_json() == doc`` for every document drillbook
writes, and a record read from a document survives any number of further trips unchanged
(``to_json`` rounds measured seconds to microseconds once; nothing else changes). So a re-rendered
report shows exactly what the drill recorded.

Sections and smoke results are typed (harness/model/sections.py, harness/model/results.py); a
plain dict given for either (the older scenario API) is read into its type when the record is
built, so every reader sees typed values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from harness.model.audit import AuditRecord
from harness.model.base import (
    EVIDENCE_FORMAT,
    EvidenceFormatError,
    Verdict,
    enum_of,
    iso,
    obj,
    parse_utc,
    req,
    str_list,
    str_map,
)
from harness.model.objectives import Objective, ObjectiveKind, ObjectiveResult, VerifiedRto
from harness.model.records import HostCheck, IntegrityCheck, StepRecord, TimelineEntry
from harness.model.results import SmokeResult
from harness.model.rpo import RestorePoint
from harness.model.sections import Section, section_from_json, sections_from_json


@dataclass(frozen=True)
class Evidence:
    """Everything a drill proved, in the shape evidence.json has.

    ``rto`` is the RTO objective, judged on the service RTO (fault until the service was back,
    proven by the verification after it); ``rto_verified`` is the conservative figure beside it
    (fault until verification passed) with the verification's own duration (harness/model/rto.py).
    """

    drill_id: str
    scenario: str
    variant: str
    asset: str
    tier: int
    site: str
    verdict: Verdict
    reasons: tuple[str, ...]
    rto: Objective
    rpo: Objective
    started: datetime
    finished: datetime
    timeline: tuple[TimelineEntry, ...]
    steps: tuple[StepRecord, ...]
    integrity: tuple[IntegrityCheck, ...]
    restore_point: RestorePoint | None
    smoke: SmokeResult
    rto_breakdown: dict[str, float]
    reverted: bool
    inventory: str
    versions: dict[str, str]
    sections: dict[str, Section] = field(default_factory=dict)
    #: every objective judged (RTO, RPO, integrity, smoke, each SLO, revert, host checks): the
    #: verdict is derived from these, and every report renders these
    objectives: tuple[ObjectiveResult, ...] = ()
    #: what an auditor asks for beyond the measurements (see AuditRecord); None only for records
    #: built by hand in tests, never for a drill the runner ran
    audit: AuditRecord | None = None
    #: the verified RTO and the verification's duration; None only in evidence written before
    #: drillbook measured the service RTO (then ``rto`` is the verified figure)
    rto_verified: VerifiedRto | None = None
    #: the host checks of preflight and verify (harness/hosts), each also an objective; absent
    #: from the document when the drill's asset has no declared host
    host_checks: tuple[HostCheck, ...] = ()

    def __post_init__(self) -> None:
        # the older scenario API hands in plain dicts: read them into their types once, here
        if isinstance(self.smoke, Mapping):
            object.__setattr__(self, "smoke", SmokeResult.from_json(self.smoke))
        if any(not isinstance(s, Section) for s in self.sections.values()):
            object.__setattr__(self, "sections", {
                name: section_from_json(name, s) for name, s in self.sections.items()})

    @property
    def rto_objective(self) -> ObjectiveResult | None:
        return next((o for o in self.objectives if o.kind is ObjectiveKind.RTO), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": EVIDENCE_FORMAT,
            "drill_id": self.drill_id,
            "scenario": self.scenario,
            "variant": self.variant,
            "asset": self.asset,
            "tier": self.tier,
            "site": self.site,
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "rto": self.rto.to_json(),
            **({} if self.rto_verified is None else {"rto_verified": self.rto_verified.to_json()}),
            "rpo": self.rpo.to_json(),
            "objectives": [o.to_json() for o in self.objectives],
            "rto_breakdown_s": {k: round(v, 6) for k, v in self.rto_breakdown.items()},
            "started_utc": iso(self.started),
            "finished_utc": iso(self.finished),
            "timeline": [t.to_json() for t in self.timeline],
            "steps": [s.to_json() for s in self.steps],
            "integrity": [c.to_json() for c in self.integrity],
            "restore_point": None if self.restore_point is None else self.restore_point.to_json(),
            "smoke": self.smoke.to_json(),
            "reverted": self.reverted,
            "inventory": self.inventory,
            "versions": dict(self.versions),
            "sections": {name: s.to_json() for name, s in self.sections.items()},
            **({"host_checks": [h.to_json() for h in self.host_checks]}
               if self.host_checks else {}),
            **({} if self.audit is None else self.audit.to_json()),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Evidence:
        """The evidence a document records; raises :class:`EvidenceFormatError` (a UsageError)
        naming the field when it does not match, e.g. evidence written before the objective
        list existed."""
        d = obj(doc, "evidence")
        if d.get("format") != EVIDENCE_FORMAT:
            raise EvidenceFormatError(f"evidence format {d.get('format')!r} is not "
                                      f"{EVIDENCE_FORMAT!r}")
        if "objectives" not in d:
            raise EvidenceFormatError(
                f"evidence {d.get('drill_id', '?')} has no objectives list: it was written by an "
                f"older drillbook; run the drill again")
        unknown = set(d) - _KNOWN_KEYS
        if unknown:
            # a field this drillbook does not model would be dropped on the way through: refuse
            raise EvidenceFormatError(
                f"evidence {d.get('drill_id', '?')} has field(s) this drillbook does not know: "
                f"{', '.join(sorted(unknown))} (written by a newer drillbook?)")
        point = d.get("restore_point")
        verified = d.get("rto_verified")
        return cls(
            drill_id=req(d, "drill_id", str, "evidence"), scenario=req(d, "scenario", str, "evidence"),
            variant=req(d, "variant", str, "evidence"), asset=req(d, "asset", str, "evidence"),
            tier=req(d, "tier", int, "evidence"), site=req(d, "site", str, "evidence"),
            verdict=enum_of(Verdict, d.get("verdict"), "verdict"),
            reasons=str_list(d.get("reasons"), "reasons"),
            rto=Objective.from_json(obj(d.get("rto"), "rto"), "rto"),
            rpo=Objective.from_json(obj(d.get("rpo"), "rpo"), "rpo"),
            started=parse_utc(d.get("started_utc"), "started_utc"),
            finished=parse_utc(d.get("finished_utc"), "finished_utc"),
            timeline=tuple(TimelineEntry.from_json(obj(t, f"timeline[{i}]"), f"timeline[{i}]")
                           for i, t in enumerate(req(d, "timeline", list, "evidence"))),
            steps=tuple(StepRecord.from_json(obj(s, f"steps[{i}]"), f"steps[{i}]")
                        for i, s in enumerate(req(d, "steps", list, "evidence"))),
            integrity=tuple(IntegrityCheck.from_json(obj(c, f"integrity[{i}]"), f"integrity[{i}]")
                            for i, c in enumerate(req(d, "integrity", list, "evidence"))),
            restore_point=None if point is None else RestorePoint.from_json(
                obj(point, "restore_point")),
            smoke=SmokeResult.from_json(obj(d.get("smoke"), "smoke")),
            rto_breakdown=_seconds_map(d.get("rto_breakdown_s"), "rto_breakdown_s"),
            reverted=req(d, "reverted", bool, "evidence"),
            inventory=req(d, "inventory", str, "evidence"),
            versions=str_map(d.get("versions"), "versions"),
            sections=sections_from_json(obj(d.get("sections"), "sections")),
            objectives=tuple(ObjectiveResult.from_json(obj(o, f"objectives[{i}]"),
                                                       f"objectives[{i}]")
                             for i, o in enumerate(req(d, "objectives", list, "evidence"))),
            audit=AuditRecord.from_json(d) if "exercise" in d else None,
            rto_verified=None if verified is None else VerifiedRto.from_json(
                obj(verified, "rto_verified")),
            host_checks=tuple(HostCheck.from_json(obj(h, f"host_checks[{i}]"), f"host_checks[{i}]")
                              for i, h in enumerate(d.get("host_checks") or [])),
        )

    def replace(self, **changes: Any) -> Evidence:
        return dataclasses.replace(self, **changes)


_KNOWN_KEYS = frozenset((
    "format", "drill_id", "scenario", "variant", "asset", "tier", "site", "verdict", "reasons",
    "rto", "rto_verified", "rpo", "objectives", "rto_breakdown_s", "started_utc", "finished_utc",
    "timeline", "steps", "integrity", "restore_point", "smoke", "reverted", "inventory",
    "versions", "sections", "exercise", "runbook", "scope", "objectives_source", "baseline",
    "deviations", "findings", "tool_versions", "environment", "host_checks"))


def _seconds_map(value: object, where: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for k, v in obj(value, where).items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise EvidenceFormatError(f"{where}.{k}: expected a number, got {v!r}")
        out[k] = v
    return out
