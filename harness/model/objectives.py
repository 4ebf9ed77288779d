"""Objectives: a measured quantity against its target (:class:`Objective`), the verified RTO
shown beside the service RTO (:class:`VerifiedRto`), and one judged objective of the list every
report renders (:class:`ObjectiveResult`)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.model.base import Verdict, enum_of, opt, req
from harness.model.rpo import RpoMeasurement
from harness.model.rto import RtoMeasurement


@dataclass(frozen=True)
class Objective:
    """A measured quantity against its target. ``measured_s`` is None when it could not be measured,
    and then ``met`` is None too: an unmeasured objective is never met. ``definition`` says which
    definition applied (RPO: restore-point-age or writes-lost; RTO: the instant that ended the
    service RTO, service-recovered or recovery-completed), ``error`` why it could not be
    measured, ``note`` anything absorbed."""

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

    @classmethod
    def of_rto(cls, m: RtoMeasurement, target_s: float) -> Objective:
        """The RTO objective, judged on the service RTO."""
        return dataclasses.replace(
            cls.evaluate(m.service_s, target_s),
            definition=None if m.definition is None else m.definition.value, error=m.error,
            note=m.note)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"measured_s": self.measured_s, "target_s": self.target_s,
                               "met": self.met}
        for key, value in (("definition", self.definition), ("error", self.error),
                           ("note", self.note)):
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: str) -> Objective:
        return cls(opt(doc, "measured_s", float, where), req(doc, "target_s", float, where),
                   opt(doc, "met", bool, where), opt(doc, "definition", str, where),
                   opt(doc, "error", str, where), opt(doc, "note", str, where))


@dataclass(frozen=True)
class VerifiedRto:
    """The conservative RTO shown beside the service RTO: fault injected until the harness's
    own verification passed (``measured_s``), and that verification's duration. Neither is
    judged against the target; both are measured from journal events (harness/model/rto.py)."""

    measured_s: float | None
    verification_s: float | None

    @classmethod
    def of(cls, m: RtoMeasurement) -> VerifiedRto:
        return cls(None if m.verified_s is None else round(m.verified_s, 6),
                   None if m.verification_s is None else round(m.verification_s, 6))

    def to_json(self) -> dict[str, Any]:
        return {"measured_s": self.measured_s, "verification_s": self.verification_s}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: str = "rto_verified") -> VerifiedRto:
        return cls(opt(doc, "measured_s", float, where), opt(doc, "verification_s", float, where))


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
    (:func:`harness.verdict.judge`), and every report shows exactly these, so none can disagree.
    The RTO's result also carries the verified RTO and the verification's duration, so a report
    that shows the objective list shows both RTO figures."""

    name: str  # "RTO", "RPO", "integrity", "smoke", "slo:<section>", "revert", "host:<check>"
    kind: ObjectiveKind
    status: Verdict
    message: str
    measured_s: float | None = None
    target_s: float | None = None
    verified_s: float | None = None
    verification_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind.value,
                               "status": self.status.value, "message": self.message,
                               "measured_s": self.measured_s, "target_s": self.target_s}
        if self.verified_s is not None:
            out["verified_s"] = self.verified_s
        if self.verification_s is not None:
            out["verification_s"] = self.verification_s
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: str = "objective") -> ObjectiveResult:
        return cls(req(doc, "name", str, where),
                   enum_of(ObjectiveKind, doc.get("kind"), f"{where}.kind"),
                   enum_of(Verdict, doc.get("status"), f"{where}.status"),
                   req(doc, "message", str, where), opt(doc, "measured_s", float, where),
                   opt(doc, "target_s", float, where), opt(doc, "verified_s", float, where),
                   opt(doc, "verification_s", float, where))
