"""Typed check results: the smoke test (:class:`SmokeResult`) and a service-level objective
(:class:`SloResult`).

Both keep the JSON shape evidence has always had (a flat object), so old and new evidence read
the same: the fields the verdict uses are typed, and anything else a scenario recorded beside them
stays in ``details`` exactly as given.

    SmokeResult.check(True, "3 models answer", endpoint=url)          # passed / failed
    SmokeResult.golden(total=8, identical=8, endpoint=url)            # golden outputs compared
    SmokeResult.not_run("no golden inputs for the endpoint")          # could not run
    SloResult(met=True, summary="acceptance run met the SLO", details={"max_p95_ms": 150.0})
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.model.base import Scalar, is_json_type, obj, scalar_map

_SMOKE_FIELDS: dict[str, type] = {"passed": bool, "summary": str, "golden_inputs": int,
                                  "identical_outputs": int}


@dataclass(frozen=True)
class SmokeResult:
    """What the smoke test found. ``passed`` is a check's own yes/no; ``golden_inputs`` and
    ``identical_outputs`` count golden outputs compared; ``details`` is everything else recorded
    (the endpoint, counts of a registry, a "not run: ..." reason)."""

    passed: bool | None = None
    summary: str | None = None
    golden_inputs: int | None = None
    identical_outputs: int | None = None
    details: dict[str, Scalar] = field(default_factory=dict)

    @classmethod
    def check(cls, passed: bool, summary: str, **details: Scalar) -> SmokeResult:
        return cls(passed=passed, summary=summary, details=dict(details))

    @classmethod
    def golden(cls, total: int, identical: int, **details: Scalar) -> SmokeResult:
        return cls(golden_inputs=total, identical_outputs=identical, details=dict(details))

    @classmethod
    def not_run(cls, why: str, key: str = "smoke") -> SmokeResult:
        return cls(details={key: f"not run: {why}"})

    @property
    def recorded(self) -> bool:
        """Whether the scenario recorded anything at all."""
        return bool(self.to_json())

    @property
    def not_run_reason(self) -> str | None:
        return next((v for v in self.details.values() if isinstance(v, str) and "not run" in v),
                    None)

    def judged(self) -> tuple[bool | None, str]:
        """(passed, message); passed is None when the smoke test did not run or said nothing."""
        if self.passed is not None:
            return self.passed, self.summary or "smoke test"
        total, same = self.golden_inputs, self.identical_outputs
        if total is not None and same is not None and total > 0:
            if same == total:
                return True, f"{same} of {total} golden outputs identical"
            return False, f"{total - same} of {total} golden outputs differ"
        return None, self.not_run_reason or "smoke test did not run"

    # a read-only mapping view of the JSON, for code written when smoke results were a dict
    def __getitem__(self, key: str) -> Scalar:
        return self.to_json()[key]

    def get(self, key: str, default: Scalar = None) -> Scalar:
        return self.to_json().get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.to_json()

    def to_json(self) -> dict[str, Scalar]:
        out: dict[str, Scalar] = {}
        for key in _SMOKE_FIELDS:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out.update(self.details)
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], where: str = "smoke") -> SmokeResult:
        flat = scalar_map(doc, where)
        typed = {k: v for k, v in flat.items()
                 if k in _SMOKE_FIELDS and is_json_type(v, _SMOKE_FIELDS[k])}
        # a declared key with another type (a scenario's own use of the name) stays a detail
        rest = {k: v for k, v in flat.items() if k not in typed}
        return cls(details=rest, **typed)  # type: ignore[arg-type]


@dataclass(frozen=True)
class SloResult:
    """A service-level objective judged by a scenario: ``met`` True/False, or None when it could
    not be judged; ``summary`` says what was measured; ``details`` holds the SLO's thresholds
    and anything else recorded with it."""

    met: bool | None
    summary: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"met": self.met}
        if self.summary is not None:
            out["summary"] = self.summary
        out.update(self.details)
        return out

    @classmethod
    def from_json(cls, doc: Any, where: str = "slo") -> SloResult:
        from harness.model.base import EvidenceFormatError

        d = obj(doc, where)
        if "met" not in d or not (d["met"] is None or isinstance(d["met"], bool)):
            raise EvidenceFormatError(f"{where}.met: expected true, false or null")
        summary = d.get("summary")
        if summary is not None and not isinstance(summary, str):
            raise EvidenceFormatError(f"{where}.summary: expected a string, got {summary!r}")
        rest = {k: v for k, v in d.items() if k not in ("met", "summary")}
        if "summary" in d and summary is None:
            rest["summary"] = None  # kept as written
        return cls(d["met"], summary, rest)
