"""The auditor's record: who exercised what, why, against which plan version and objectives,
what was found and who fixes it by when.

ISO 22301 (8.5), SOC 2 A1.3, DORA Art. 24-25 and NIST SP 800-53 CP-4 all ask for these. Every
field is either measured, read from the inventory / the command line, or None ("not given"):
nothing is filled in with a plausible default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from harness.model.base import (
    EvidenceFormatError,
    Scalar,
    iso,
    obj,
    opt,
    parse_utc,
    req,
    scalar_map,
    str_list,
    str_map,
)


@dataclass(frozen=True)
class Participant:
    name: str
    role: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role}

    @classmethod
    def from_json(cls, doc: Any, where: str = "participant") -> Participant:
        d = obj(doc, where)
        return cls(req(d, "name", str, where), req(d, "role", str, where))


@dataclass(frozen=True)
class Exercise:
    """The exercise as planned and as held. ``sources`` says where each given field came from
    (``cli`` or ``inventory``); a field that is None was not given anywhere."""

    title: str
    type: str
    reason: str | None
    planned_date: str | None
    actual_date: str
    participants: tuple[Participant, ...]
    approver: str | None
    sources: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "type": self.type,
            "reason": self.reason,
            "planned_date": self.planned_date,
            "actual_date": self.actual_date,
            "participants": [p.to_json() for p in self.participants],
            "approver": self.approver,
            "sources": dict(self.sources),
        }

    @classmethod
    def from_json(cls, doc: Any, where: str = "exercise") -> Exercise:
        d = obj(doc, where)
        people = req(d, "participants", list, where)
        return cls(req(d, "title", str, where), req(d, "type", str, where),
                   opt(d, "reason", str, where), opt(d, "planned_date", str, where),
                   req(d, "actual_date", str, where),
                   tuple(Participant.from_json(p, f"{where}.participants[{i}]")
                         for i, p in enumerate(people)),
                   opt(d, "approver", str, where), str_map(d.get("sources", {}), f"{where}.sources"))


@dataclass(frozen=True)
class RunbookVersion:
    """Which runbook ran: the drillbook checkout's commit and a hash of the scenario's definition
    (its step names and module source), so two drills can be shown to have run the same plan."""

    git_commit: str | None
    git_dirty: bool | None
    definition_sha256: str
    steps: tuple[str, ...]
    module: str

    def to_json(self) -> dict[str, Any]:
        return {
            "git_commit": self.git_commit,
            "git_dirty": self.git_dirty,
            "definition_sha256": self.definition_sha256,
            "steps": list(self.steps),
            "module": self.module,
        }

    @classmethod
    def from_json(cls, doc: Any, where: str = "runbook") -> RunbookVersion:
        d = obj(doc, where)
        return cls(opt(d, "git_commit", str, where), opt(d, "git_dirty", bool, where),
                   req(d, "definition_sha256", str, where),
                   str_list(d.get("steps"), f"{where}.steps"), req(d, "module", str, where))


@dataclass(frozen=True)
class ScopeSystem:
    name: str
    kind: str
    role: str
    location: str  # endpoint / repository / URL with any user:password part removed
    drill_safe: bool

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "role": self.role,
                "location": self.location, "drill_safe": self.drill_safe}

    @classmethod
    def from_json(cls, doc: Any, where: str = "system") -> ScopeSystem:
        d = obj(doc, where)
        return cls(req(d, "name", str, where), req(d, "kind", str, where),
                   req(d, "role", str, where), req(d, "location", str, where),
                   req(d, "drill_safe", bool, where))


@dataclass(frozen=True)
class ScopeAsset:
    id: str
    tier: int
    kind: str
    model: str | None
    version: str | None
    artifact_uris: tuple[str, ...]
    backup_locations: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "tier": self.tier, "kind": self.kind, "model": self.model,
                "version": self.version, "artifact_uris": list(self.artifact_uris),
                "backup_locations": list(self.backup_locations)}

    @classmethod
    def from_json(cls, doc: Any, where: str = "asset") -> ScopeAsset:
        d = obj(doc, where)
        return cls(req(d, "id", str, where), req(d, "tier", int, where), req(d, "kind", str, where),
                   opt(d, "model", str, where), opt(d, "version", str, where),
                   str_list(d.get("artifact_uris"), f"{where}.artifact_uris"),
                   str_list(d.get("backup_locations"), f"{where}.backup_locations"))


@dataclass(frozen=True)
class Scope:
    site: str
    systems: tuple[ScopeSystem, ...]
    assets: tuple[ScopeAsset, ...]
    blast_radius: str
    #: the scenario's parameters the drill ran with (harness/params.py); absent when it has none
    params: dict[str, str | int | float | bool] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"site": self.site,
                               "systems": [s.to_json() for s in self.systems],
                               "assets": [a.to_json() for a in self.assets],
                               "blast_radius": self.blast_radius}
        if self.params:
            out["params"] = dict(self.params)
        return out

    @classmethod
    def from_json(cls, doc: Any, where: str = "scope") -> Scope:
        d = obj(doc, where)
        return cls(req(d, "site", str, where),
                   tuple(ScopeSystem.from_json(s, f"{where}.systems[{i}]")
                         for i, s in enumerate(req(d, "systems", list, where))),
                   tuple(ScopeAsset.from_json(a, f"{where}.assets[{i}]")
                         for i, a in enumerate(req(d, "assets", list, where))),
                   req(d, "blast_radius", str, where),
                   _params(d.get("params", {}), f"{where}.params"))


def _params(doc: Any, where: str) -> dict[str, str | int | float | bool]:
    d = obj(doc, where)
    for name, value in d.items():
        if not isinstance(value, str | int | float | bool):
            raise EvidenceFormatError(f"{where}.{name}: a parameter is a string, number or "
                                      "boolean")
    return dict(d)


@dataclass(frozen=True)
class BaselineFact:
    """Something recorded before the fault (an event of the preflight or baseline phase)."""

    event: str
    utc: datetime
    detail: dict[str, Scalar]

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "utc": iso(self.utc), "detail": dict(self.detail)}

    @classmethod
    def from_json(cls, doc: Any, where: str = "baseline") -> BaselineFact:
        d = obj(doc, where)
        return cls(req(d, "event", str, where), parse_utc(d.get("utc"), f"{where}.utc"),
                   scalar_map(d.get("detail", {}), f"{where}.detail"))


@dataclass(frozen=True)
class CorrectiveAction:
    action: str
    owner: str | None
    due: str | None
    status: str = "open"

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "owner": self.owner, "due": self.due,
                "status": self.status}

    @classmethod
    def from_json(cls, doc: Any, where: str = "corrective_action") -> CorrectiveAction:
        d = obj(doc, where)
        return cls(req(d, "action", str, where), opt(d, "owner", str, where),
                   opt(d, "due", str, where), req(d, "status", str, where))


@dataclass(frozen=True)
class Finding:
    """A finding of the drill (``source`` drill) or added by the team afterwards (``team``).
    Corrective actions are filled in later through the sidecar file (reports/findings.py)."""

    id: str
    severity: str  # "fail" | "inconclusive" | "deviation" | "observation"
    summary: str
    source: str
    corrective_action: CorrectiveAction | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "severity": self.severity, "summary": self.summary,
                "source": self.source,
                "corrective_action": (None if self.corrective_action is None
                                      else self.corrective_action.to_json())}

    @classmethod
    def from_json(cls, doc: Any, where: str = "finding") -> Finding:
        d = obj(doc, where)
        ca = d.get("corrective_action")
        return cls(req(d, "id", str, where), req(d, "severity", str, where),
                   req(d, "summary", str, where), req(d, "source", str, where),
                   None if ca is None
                   else CorrectiveAction.from_json(ca, f"{where}.corrective_action"))


@dataclass(frozen=True)
class AuditRecord:
    exercise: Exercise
    runbook: RunbookVersion
    scope: Scope
    objectives_source: str
    baseline: tuple[BaselineFact, ...]
    deviations: tuple[str, ...]
    findings: tuple[Finding, ...]
    tool_versions: dict[str, str]
    environment: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "exercise": self.exercise.to_json(),
            "runbook": self.runbook.to_json(),
            "scope": self.scope.to_json(),
            "objectives_source": self.objectives_source,
            "baseline": [b.to_json() for b in self.baseline],
            "deviations": list(self.deviations),
            "findings": [f.to_json() for f in self.findings],
            "tool_versions": dict(self.tool_versions),
            "environment": dict(self.environment),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> AuditRecord:
        """The auditor's fields of an evidence document (they sit at its top level)."""
        return cls(
            Exercise.from_json(doc.get("exercise")), RunbookVersion.from_json(doc.get("runbook")),
            Scope.from_json(doc.get("scope")), req(doc, "objectives_source", str, "evidence"),
            tuple(BaselineFact.from_json(b, f"baseline[{i}]")
                  for i, b in enumerate(req(doc, "baseline", list, "evidence"))),
            str_list(doc.get("deviations"), "deviations"),
            tuple(Finding.from_json(f, f"findings[{i}]")
                  for i, f in enumerate(req(doc, "findings", list, "evidence"))),
            str_map(doc.get("tool_versions"), "tool_versions"),
            str_map(doc.get("environment"), "environment"))
