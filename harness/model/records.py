"""What the journal records as the drill runs: events, timed steps, integrity checks, and the
timeline entries the evidence derives from events.

Each record's ``to_json`` is the shape it has in ``journal.jsonl`` and ``evidence.json``;
``from_json`` reads that shape back exactly (floats are rounded once, when written).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from harness.model.base import (
    Outcome,
    Phase,
    Scalar,
    enum_of,
    iso,
    opt,
    parse_utc,
    req,
    scalar_map,
)


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

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: str = "event") -> Event:
        return cls(req(doc, "seq", int, where), req(doc, "event", str, where),
                   enum_of(Phase, doc.get("phase"), f"{where}.phase"),
                   parse_utc(doc.get("utc"), f"{where}.utc"), req(doc, "mono", float, where),
                   scalar_map(doc.get("detail", {}), f"{where}.detail"))


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

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: str = "step") -> StepRecord:
        return cls(req(doc, "name", str, where), enum_of(Phase, doc.get("phase"), f"{where}.phase"),
                   parse_utc(doc.get("start"), f"{where}.start"),
                   parse_utc(doc.get("end"), f"{where}.end"), req(doc, "duration_s", float, where),
                   enum_of(Outcome, doc.get("outcome"), f"{where}.outcome"),
                   req(doc, "message", str, where))


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

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: str = "integrity") -> IntegrityCheck:
        return cls(req(doc, "object", str, where), req(doc, "expected_sha256", str, where),
                   opt(doc, "actual_sha256", str, where), req(doc, "ok", bool, where),
                   enum_of(Phase, doc.get("phase"), f"{where}.phase"))


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

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: str = "host_checks") -> HostCheck:
        return cls(req(doc, "host", str, where), req(doc, "backend", str, where),
                   enum_of(Phase, doc.get("phase"), f"{where}.phase"),
                   req(doc, "check", str, where), req(doc, "expected", str, where),
                   req(doc, "found", str, where), opt(doc, "ok", bool, where))


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

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: str = "timeline") -> TimelineEntry:
        return cls(req(doc, "event", str, where), parse_utc(doc.get("utc"), f"{where}.utc"),
                   opt(doc, "since_injection_s", float, where))


def event_by_name(events: list[Event] | tuple[Event, ...], name: str) -> Event | None:
    """The first event of that name, or None."""
    for ev in events:
        if ev.name == name:
            return ev
    return None


def last_event(events: list[Event] | tuple[Event, ...], name: str) -> Event | None:
    """The last event of that name, or None."""
    for ev in reversed(events):
        if ev.name == name:
            return ev
    return None
