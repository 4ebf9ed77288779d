"""The section types drillbook itself declares: ``interruption`` (the runner, when a signal came)
and ``load`` (the fleet scenarios: the service under load through the drill).

Scenario modules declare their own the same way (harness/model/sections.py); these live here
because the engine writes the first and the HTML report draws a chart from the second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.model.codec import OMITTED_WHEN_NONE
from harness.model.results import SloResult
from harness.model.sections import TypedSection, register_section


@dataclass(frozen=True)
class SignalRecord:
    signal: str
    phase: str
    step: str | None
    utc: str
    aborted: bool


@register_section("interruption")
@dataclass(frozen=True)
class InterruptionSection(TypedSection):
    """A signal reached the drill: which, where, where it stopped, and whether revert verified
    the target as found (None when no fault was injected)."""

    signal: str
    phase: str
    step: str | None
    utc: str
    stopped: str | None
    fault_injected: bool
    target_as_found: bool | None
    signals: tuple[SignalRecord, ...]


@dataclass(frozen=True)
class LoadWindow:
    """Totals over a window of load (harness/load.py ``summarize``)."""

    seconds: float
    requests: int
    failures: int
    error_rate: float | None
    rps: float | None
    goodput_rps: float | None
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


@dataclass(frozen=True)
class AcceptanceWindow(LoadWindow):
    """The acceptance run after recovery: its totals, and whether it met the SLO."""

    met: bool
    missed: tuple[str, ...]


@dataclass(frozen=True)
class LoadSecond:
    """One second of load (harness/load.py ``availability_timeline``)."""

    since_t0_s: float
    utc: str
    span_s: float
    requests: int
    failures: int
    error_rate: float | None
    goodput_rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    errors: dict[str, int]


@register_section("load")
@dataclass(frozen=True)
class LoadSection(TypedSection):
    """The service under load through a fleet drill: the SLO and the acceptance run's verdict,
    the windows before, during and after the fault, the per-second timeline, and the instants
    (seconds since the fault) the chart marks."""

    slo_result: SloResult
    baseline_rps: float
    baseline: LoadWindow
    during_fault: LoadWindow
    acceptance: AcceptanceWindow
    inference_rto_s: float | None
    failed_requests: int
    marks: dict[str, float | None]
    timeline: tuple[LoadSecond, ...]
    #: the node-loss and site-loss drills record these; the Kubernetes drill records the
    #: endpoint instead
    failed_requests_total: int | None = field(default=None, metadata=OMITTED_WHEN_NONE)
    phases: dict[str, Any] | None = field(default=None, metadata=OMITTED_WHEN_NONE)
    endpoint: str | None = field(default=None, metadata=OMITTED_WHEN_NONE)

    @property
    def slo(self) -> SloResult:
        return self.slo_result

    @property
    def max_p95_ms(self) -> float | None:
        v = self.slo_result.details.get("max_p95_ms")
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def to_json(self) -> dict[str, Any]:
        out = super().to_json()
        out["slo"] = out.pop("slo_result")
        return {"slo": out.pop("slo"), **out}

    @classmethod
    def from_json(cls, doc: Any, where: str = "section") -> LoadSection:
        if isinstance(doc, dict) and "slo" in doc and "slo_result" not in doc:
            doc = {("slo_result" if k == "slo" else k): v for k, v in doc.items()}
        return super().from_json(doc, where)
