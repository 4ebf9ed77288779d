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


@dataclass(frozen=True)
class RestorePoint:
    """The copy a recovery restores from: where it is and when it was made."""

    kind: str  # "bucket-version" | "restic-snapshot"
    identity: str
    created: datetime
    location: str
    newer_versions_lost: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "identity": self.identity,
            "created_utc": iso(self.created),
            "location": self.location,
            "newer_versions_lost": self.newer_versions_lost,
        }


@dataclass(frozen=True)
class Objective:
    """A measured quantity against its target. ``measured_s`` is None when it could not be measured,
    and then ``met`` is None too: an unmeasured objective is never met."""

    measured_s: float | None
    target_s: float
    met: bool | None

    @classmethod
    def evaluate(cls, measured_s: float | None, target_s: float) -> Objective:
        if measured_s is None:
            return cls(None, target_s, None)
        return cls(round(measured_s, 6), target_s, measured_s <= target_s)

    def to_json(self) -> dict[str, Any]:
        return {"measured_s": self.measured_s, "target_s": self.target_s, "met": self.met}


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


def compute_rpo(events: list[Event] | tuple[Event, ...], point: RestorePoint | None) -> float | None:
    """Seconds from the restore point's creation to the injection (UTC wall clock): the data window
    lost. None when nothing was restored or the fault never happened."""
    t0 = event_by_name(events, "fault.injected")
    if t0 is None or point is None:
        return None
    return max(0.0, (t0.utc - point.created).total_seconds())


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
