"""The drill's typed record: verdicts, journal events, runbook steps, integrity checks, evidence.

Everything a report shows comes from these frozen dataclasses. RTO and RPO are derived from
recorded events (:func:`compute_rto`, :func:`compute_rpo`), never typed in, so a number in the
evidence is always one the clock measured.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

EVIDENCE_FORMAT = "drillbook-evidence/1"


class Verdict(enum.Enum):
    """The outcome of a drill; each has its own process exit code."""

    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"

    @property
    def exit_code(self) -> int:
        return {Verdict.PASS: 0, Verdict.FAIL: 1, Verdict.INCONCLUSIVE: 2}[self]


#: Exit code for bad input (malformed inventory, unknown scenario, bad options): nothing ran.
EXIT_USAGE = 3
#: Exit code when the drill was interrupted (Ctrl-C) after revert ran.
EXIT_INTERRUPTED = 130


class Phase(enum.Enum):
    PREFLIGHT = "preflight"
    BASELINE = "baseline"
    INJECT = "inject"
    DETECT = "detect"
    RUNBOOK = "runbook"
    VERIFY = "verify"
    REVERT = "revert"
    EVIDENCE = "evidence"


class Outcome(enum.Enum):
    OK = "ok"
    FAILED = "failed"  # the step ran and its check said no
    ERROR = "error"  # the step could not run (unreachable, tool missing, exception)
    SKIPPED = "skipped"


Scalar = str | int | float | bool | None


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    if ts.tzinfo is None:
        raise ValueError("naive datetime in the record; every timestamp must be UTC-aware")
    return ts.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class Event:
    """One journal line: something that happened, when (UTC) and at which monotonic instant."""

    seq: int
    name: str
    phase: Phase
    utc: datetime
    mono: float
    detail: dict[str, Scalar] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "event": self.name,
            "phase": self.phase.value,
            "utc": iso(self.utc),
            "mono": round(self.mono, 6),
            "detail": dict(self.detail),
        }


@dataclass(frozen=True)
class StepRecord:
    """A timed step (a runbook step, or a check in another phase)."""

    name: str
    phase: Phase
    started: datetime
    ended: datetime
    duration_s: float
    outcome: Outcome
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "phase": self.phase.value,
            "start": iso(self.started),
            "end": iso(self.ended),
            "duration_s": round(self.duration_s, 6),
            "outcome": self.outcome.value,
            "message": self.message,
        }


@dataclass(frozen=True)
class IntegrityCheck:
    """An object's SHA-256 compared with the manifest."""

    object: str
    expected_sha256: str
    actual_sha256: str | None
    ok: bool
    phase: Phase = Phase.VERIFY

    def to_json(self) -> dict[str, Any]:
        return {
            "object": self.object,
            "expected_sha256": self.expected_sha256,
            "actual_sha256": self.actual_sha256,
            "ok": self.ok,
            "phase": self.phase.value,
        }


#: How far a restore point's own timestamp may lie *after* the fault (t0) and still count as made
#: before it: the backup host's clock and the drill host's may disagree by this much. A point dated
#: later is never chosen, and the RPO it would give is an error, never a number.
RESTORE_POINT_CLOCK_TOLERANCE_S = 2.0


class RpoDefinition(enum.Enum):
    """Which RPO the evidence states (the reports name it)."""

    #: a copy taken at one instant (restic snapshot, pg_dump): RPO = t0 - the copy's creation time
    RESTORE_POINT_AGE = "restore-point-age"
    #: continuous protection (bucket versions) keeps every write: RPO = t0 - the oldest write that
    #: did not come back, 0 when nothing was lost
    WRITES_LOST = "writes-lost"


@dataclass(frozen=True)
class RestorePoint:
    """The copy a recovery restores from: where it is and when it was made.

    ``continuous`` marks a point kept by continuous protection (a bucket version); then
    ``oldest_lost_write`` is when the oldest write newer than it was made (None: nothing lost)."""

    kind: str  # "bucket-version" | "restic-snapshot" | "pg-dump" | ...
    identity: str
    created: datetime
    location: str
    newer_versions_lost: int = 0
    continuous: bool = False
    oldest_lost_write: datetime | None = None

    @property
    def rpo_definition(self) -> RpoDefinition:
        return RpoDefinition.WRITES_LOST if self.continuous else RpoDefinition.RESTORE_POINT_AGE

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "identity": self.identity,
            "created_utc": iso(self.created),
            "location": self.location,
            "newer_versions_lost": self.newer_versions_lost,
            "rpo_definition": self.rpo_definition.value,
            "oldest_lost_write_utc": (None if self.oldest_lost_write is None
                                      else iso(self.oldest_lost_write)),
        }


@dataclass(frozen=True)
class RpoMeasurement:
    """An RPO as measured: seconds (None when it cannot be), which definition applied, and when
    it cannot be, why (``error``). ``note`` records a clock difference absorbed by the tolerance."""

    seconds: float | None
    definition: RpoDefinition | None
    error: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Objective:
    """A measured quantity against its target. ``measured_s`` is None when it could not be measured,
    and then ``met`` is None too: an unmeasured objective is never met. For an RPO, ``definition``
    says which one applied, ``error`` why it could not be measured, ``note`` anything absorbed."""

    measured_s: float | None
    target_s: float
    met: bool | None
    definition: str | None = None
    error: str | None = None
    note: str | None = None

    @classmethod
    def evaluate(cls, measured_s: float | None, target_s: float) -> Objective:
        if measured_s is None:
            return cls(None, target_s, None)
        return cls(round(measured_s, 6), target_s, measured_s <= target_s)

    @classmethod
    def of_rpo(cls, m: RpoMeasurement, target_s: float) -> Objective:
        return dataclasses.replace(
            cls.evaluate(m.seconds, target_s),
            definition=None if m.definition is None else m.definition.value,
            error=m.error, note=m.note)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"measured_s": self.measured_s, "target_s": self.target_s,
                               "met": self.met}
        for key, value in (("definition", self.definition), ("error", self.error),
                           ("note", self.note)):
            if value is not None:
                out[key] = value
        return out


class ObjectiveKind(enum.Enum):
    RTO = "rto"
    RPO = "rpo"
    INTEGRITY = "integrity"
    SMOKE = "smoke"
    SLO = "slo"
    REVERT = "revert"
    HOST_CHECK = "host-check"


@dataclass(frozen=True)
class ObjectiveResult:
    """One objective judged. The verdict is the worst of these and of the drill's own findings
    (:func:`harness.verdict.judge`), and every report shows exactly these, so none can disagree."""

    name: str  # "RTO", "RPO", "integrity", "smoke", "slo:<section>", "revert", "host:<check>"
    kind: ObjectiveKind
    status: Verdict
    message: str
    measured_s: float | None = None
    target_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind.value, "status": self.status.value,
                "message": self.message, "measured_s": self.measured_s,
                "target_s": self.target_s}


@dataclass(frozen=True)
class HostCheck:
    """One check of a host the drill depends on (harness/hosts): what was checked, what was
    expected and what was found. ``ok`` is None when the check could not run. Never holds a key,
    a password or a credential file's contents."""

    host: str
    backend: str
    phase: Phase
    check: str
    expected: str
    found: str
    ok: bool | None

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "backend": self.backend, "phase": self.phase.value,
                "check": self.check, "expected": self.expected, "found": self.found,
                "ok": self.ok}


@dataclass(frozen=True)
class TimelineEntry:
    event: str
    utc: datetime
    since_injection_s: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "utc": iso(self.utc),
            "since_injection_s": (
                None if self.since_injection_s is None else round(self.since_injection_s, 6)
            ),
        }


@dataclass(frozen=True)
class Evidence:
    """Everything a drill proved, in the shape evidence.json has."""

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
    smoke: dict[str, Scalar]
    rto_breakdown: dict[str, float]
    reverted: bool
    inventory: str
    versions: dict[str, str]
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: every objective judged (RTO, RPO, integrity, smoke, each SLO, revert, host checks): the
    #: verdict is derived from these, and every report renders these
    objectives: tuple[ObjectiveResult, ...] = ()
    #: what an auditor asks for beyond the measurements (see AuditRecord); None only for records
    #: built by hand in tests, never for a drill the runner ran
    audit: AuditRecord | None = None
    #: the host checks of preflight and verify (harness/hosts), each also an objective
    host_checks: tuple[HostCheck, ...] = ()

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
            "rpo": self.rpo.to_json(),
            "objectives": [o.to_json() for o in self.objectives],
            "rto_breakdown_s": {k: round(v, 6) for k, v in self.rto_breakdown.items()},
            "started_utc": iso(self.started),
            "finished_utc": iso(self.finished),
            "timeline": [t.to_json() for t in self.timeline],
            "steps": [s.to_json() for s in self.steps],
            "integrity": [c.to_json() for c in self.integrity],
            "restore_point": None if self.restore_point is None else self.restore_point.to_json(),
            "smoke": dict(self.smoke),
            "reverted": self.reverted,
            "inventory": self.inventory,
            "versions": dict(self.versions),
            "sections": dict(self.sections),
            "host_checks": [h.to_json() for h in self.host_checks],
            **({} if self.audit is None else self.audit.to_json()),
        }

    def replace(self, **changes: Any) -> Evidence:
        return dataclasses.replace(self, **changes)


def event_by_name(events: list[Event] | tuple[Event, ...], name: str) -> Event | None:
    """The first event of that name, or None."""
    for ev in events:
        if ev.name == name:
            return ev
    return None


def compute_rto(events: list[Event] | tuple[Event, ...]) -> float | None:
    """Seconds from ``fault.injected`` to ``recovery.verified`` on the monotonic clock.

    None when either event is missing: a recovery never verified has no RTO, not an RTO of zero.
    """
    t0 = event_by_name(events, "fault.injected")
    t1 = event_by_name(events, "recovery.verified")
    if t0 is None or t1 is None:
        return None
    return t1.mono - t0.mono


class RpoError(ValueError):
    """An RPO that cannot be a number: the restore point is dated after the fault."""


def measure_rpo(events: list[Event] | tuple[Event, ...], point: RestorePoint | None, *,
                tolerance_s: float = RESTORE_POINT_CLOCK_TOLERANCE_S) -> RpoMeasurement:
    """The RPO of restoring ``point`` for a fault injected at ``fault.injected`` (UTC wall clock).

    - a point-in-time copy (snapshot, dump): t0 minus the copy's creation time;
    - continuous protection (bucket versions): t0 minus the oldest write that was lost, 0 when
      nothing was lost (the restored version was the current one).

    A point dated after t0 by more than ``tolerance_s`` gives no number but an ``error`` with its
    reason (it was taken after the fault, or its clock is wrong): never a 0. Within the tolerance
    the clocks' disagreement is stated in ``note`` and the RPO is 0."""
    t0 = event_by_name(events, "fault.injected")
    if t0 is None or point is None:
        return RpoMeasurement(None, None if point is None else point.rpo_definition)
    definition = point.rpo_definition
    after = (point.created - t0.utc).total_seconds()
    if after > tolerance_s:
        return RpoMeasurement(None, definition, error=(
            f"restore point {point.kind} {point.identity} is dated {iso(point.created)}, "
            f"{after:.3f} s after the fault ({iso(t0.utc)}), beyond the clock tolerance of "
            f"{tolerance_s:g} s: it was made after the fault or its clock is wrong, so no RPO "
            f"can be stated"))
    note = None
    if after > 0:
        note = (f"restore point dated {after:.3f} s after the fault, within the clock tolerance "
                f"of {tolerance_s:g} s")
    if definition is RpoDefinition.RESTORE_POINT_AGE:
        return RpoMeasurement(max(-after, 0.0), definition, note=note)
    if point.oldest_lost_write is None:
        return RpoMeasurement(0.0, definition, note=note)
    lost_for = (t0.utc - point.oldest_lost_write).total_seconds()
    if lost_for < -tolerance_s:
        return RpoMeasurement(None, definition, error=(
            f"the oldest write lost is dated {-lost_for:.3f} s after the fault "
            f"({iso(t0.utc)}), beyond the clock tolerance of {tolerance_s:g} s"))
    return RpoMeasurement(max(lost_for, 0.0), definition, note=note)


def compute_rpo(events: list[Event] | tuple[Event, ...], point: RestorePoint | None) -> float | None:
    """Seconds of data lost by restoring ``point`` (see :func:`measure_rpo`). None when nothing
    was restored or the fault never happened; raises :class:`RpoError` (with the reason) when the
    point is dated after the fault beyond the clock tolerance: a negative RPO is never a 0."""
    m = measure_rpo(events, point)
    if m.error is not None:
        raise RpoError(m.error)
    return m.seconds


def rto_breakdown(events: list[Event] | tuple[Event, ...],
                  steps: list[StepRecord] | tuple[StepRecord, ...]) -> dict[str, float]:
    """Where the RTO went: time to detect, then each runbook step, then verification."""
    out: dict[str, float] = {}
    t0 = event_by_name(events, "fault.injected")
    det = event_by_name(events, "fault.detected")
    if t0 is not None and det is not None:
        out["detect"] = det.mono - t0.mono
    for s in steps:
        if s.phase in (Phase.RUNBOOK, Phase.VERIFY):
            out[f"{s.phase.value}:{s.name}"] = s.duration_s
    return out


# --- the auditor's record -------------------------------------------------------------------------
# ISO 22301 (8.5), SOC 2 A1.3, DORA Art. 24-25 and NIST SP 800-53 CP-4 all ask who exercised what,
# why, against which plan version and objectives, what was found and who fixes it by when. Every
# field below is either measured, read from the inventory / the command line, or None ("not
# given"): nothing is filled in with a plausible default.


@dataclass(frozen=True)
class Participant:
    name: str
    role: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role}


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


@dataclass(frozen=True)
class Scope:
    site: str
    systems: tuple[ScopeSystem, ...]
    assets: tuple[ScopeAsset, ...]
    blast_radius: str

    def to_json(self) -> dict[str, Any]:
        return {"site": self.site, "systems": [s.to_json() for s in self.systems],
                "assets": [a.to_json() for a in self.assets], "blast_radius": self.blast_radius}


@dataclass(frozen=True)
class BaselineFact:
    """Something recorded before the fault (an event of the preflight or baseline phase)."""

    event: str
    utc: datetime
    detail: dict[str, Scalar]

    def to_json(self) -> dict[str, Any]:
        return {"event": self.event, "utc": iso(self.utc), "detail": dict(self.detail)}


@dataclass(frozen=True)
class CorrectiveAction:
    action: str
    owner: str | None
    due: str | None
    status: str = "open"

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "owner": self.owner, "due": self.due,
                "status": self.status}


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
