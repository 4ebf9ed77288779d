"""The RPO: the restore point a recovery used, and how much data restoring it lost.

:func:`measure_rpo` derives the RPO from the fault's journaled instant and the restore point's own
creation time (or, for continuous protection, the oldest write that did not come back). A point
dated after the fault beyond the clock tolerance gives an error with its reason, never a number.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from harness.model.base import EvidenceFormatError, iso, opt, parse_utc, req
from harness.model.records import Event, event_by_name

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

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: str = "restore_point") -> RestorePoint:
        definition = req(doc, "rpo_definition", str, where)
        if definition not in {d.value for d in RpoDefinition}:
            raise EvidenceFormatError(f"{where}.rpo_definition: unknown value {definition!r}")
        lost = opt(doc, "oldest_lost_write_utc", str, where)
        return cls(req(doc, "kind", str, where), req(doc, "identity", str, where),
                   parse_utc(doc.get("created_utc"), f"{where}.created_utc"),
                   req(doc, "location", str, where), req(doc, "newer_versions_lost", int, where),
                   definition == RpoDefinition.WRITES_LOST.value,
                   None if lost is None else parse_utc(lost, f"{where}.oldest_lost_write_utc"))


@dataclass(frozen=True)
class RpoMeasurement:
    """An RPO as measured: seconds (None when it cannot be), which definition applied, and when
    it cannot be, why (``error``). ``note`` records a clock difference absorbed by the tolerance."""

    seconds: float | None
    definition: RpoDefinition | None
    error: str | None = None
    note: str | None = None



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
        return RpoMeasurement(-after if after < 0 else 0.0, definition, note=note)
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
