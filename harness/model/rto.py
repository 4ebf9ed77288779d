"""The RTO, in two figures, both from journaled events and never typed in.

- **Service RTO** (the one the RTO objective is judged on): from ``fault.injected`` to the
  instant the service was back. That instant is the last ``service.recovered`` event a scenario
  recorded (for example the fleet's "the SLO holds again", measured from load samples and
  journaled with its instant in ``at_utc``), or else ``recovery.completed`` (the runbook ran to
  its end). It counts only when the verification that ran after it passed (``recovery.verified``
  was journaled): a recovery nobody proved has no RTO.
- **Verified RTO** (conservative, shown beside it): from ``fault.injected`` to
  ``recovery.verified``, the end of the harness's own verification (integrity, smoke, SLO).
- **Verification time**: ``recovery.completed`` to ``recovery.verified``, the verification's own
  duration, reported beside both so it is never hidden inside either.

A negative or impossible figure (an instant before the fault, a service instant after the
verification that proved it, verification ending before the runbook did) is an ``error`` with its
reason, never a number and never a zero.

The fleet scenarios journal their "SLO holds again" instant as ``load.recovery.measured`` with
``since_t0_s``; it is read as a ``service.recovered`` until they record the latter themselves.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from harness.model.base import EvidenceFormatError, Phase, iso, parse_utc
from harness.model.records import Event, StepRecord, event_by_name, last_event

#: A scenario's explicit "the service is back" instant (detail ``at_utc`` when measured after
#: the fact, e.g. from load samples; otherwise the event's own instant).
SERVICE_RECOVERED = "service.recovered"
#: The fleet scenarios' name for the same instant (detail ``since_t0_s``).
LOAD_RECOVERY_MEASURED = "load.recovery.measured"


class RtoDefinition(enum.Enum):
    """Which instant ended the service RTO (the reports name it)."""

    #: a scenario recorded when the service was back (``service.recovered``)
    SERVICE_RECOVERED = "service-recovered"
    #: the runbook completed (``recovery.completed``)
    RECOVERY_COMPLETED = "recovery-completed"


@dataclass(frozen=True)
class RtoMeasurement:
    """Both RTO figures and the verification's duration, in seconds; None where not measured.
    ``error`` says why the service RTO is not a number when it should have been one."""

    service_s: float | None
    definition: RtoDefinition | None
    verified_s: float | None
    verification_s: float | None
    error: str | None = None
    note: str | None = None


class RtoError(ValueError):
    """An RTO that cannot be a number: an instant out of order."""


def _service_instant(events: list[Event] | tuple[Event, ...], t0: Event) -> tuple[float, str]:
    """The service-back instant on the monotonic clock and what it came from, or raise RtoError
    when a recorded instant is impossible."""
    marks = [e for e in events if e.name in (SERVICE_RECOVERED, LOAD_RECOVERY_MEASURED)]
    if not marks:
        done = event_by_name(events, "recovery.completed")
        if done is None:
            raise LookupError("no recovery.completed")
        return done.mono, RtoDefinition.RECOVERY_COMPLETED.value
    ev = marks[-1]  # a service that flapped is back only at its last recovery
    if ev.name == LOAD_RECOVERY_MEASURED:
        since = ev.detail.get("since_t0_s")
        if not isinstance(since, (int, float)) or isinstance(since, bool):
            raise RtoError(f"{ev.name} (seq {ev.seq}) carries no since_t0_s")
        return t0.mono + float(since), RtoDefinition.SERVICE_RECOVERED.value
    at = ev.detail.get("at_utc")
    if at is None:
        return ev.mono, RtoDefinition.SERVICE_RECOVERED.value
    try:
        when: datetime = parse_utc(at, f"{ev.name}.at_utc")
    except EvidenceFormatError as exc:
        raise RtoError(str(exc)) from exc
    ahead = (when - ev.utc).total_seconds()
    if ahead > 0:
        raise RtoError(f"{ev.name} (seq {ev.seq}) says the service was back at {iso(when)}, "
                       f"{ahead:.3f} s after it was journaled: an instant not yet measured")
    # the event's own (utc, mono) pair carries the wall-clock instant onto the monotonic axis
    return ev.mono + ahead, RtoDefinition.SERVICE_RECOVERED.value


def measure_rto(events: list[Event] | tuple[Event, ...]) -> RtoMeasurement:
    """The service RTO, the verified RTO and the verification's duration (see the module)."""
    t0 = event_by_name(events, "fault.injected")
    if t0 is None:
        return RtoMeasurement(None, None, None, None)
    done = event_by_name(events, "recovery.completed")
    verified = event_by_name(events, "recovery.verified")
    verified_s = None if verified is None else verified.mono - t0.mono
    verification_s = None if verified is None or done is None else verified.mono - done.mono
    if verified_s is not None and verified_s < 0:
        return RtoMeasurement(None, None, None, verification_s, error=(
            f"recovery.verified is journaled {-verified_s:.3f} s before the fault"))
    if verification_s is not None and verification_s < 0:
        return RtoMeasurement(None, None, verified_s, None, error=(
            f"recovery.verified is journaled {-verification_s:.3f} s before recovery.completed"))
    try:
        mono, source = _service_instant(events, t0)
    except LookupError:
        return RtoMeasurement(None, None, verified_s, verification_s)
    except RtoError as exc:
        return RtoMeasurement(None, None, verified_s, verification_s, error=str(exc))
    definition = RtoDefinition(source)
    service_s = mono - t0.mono
    if service_s < 0:
        return RtoMeasurement(None, definition, verified_s, verification_s, error=(
            f"the service is recorded back {-service_s:.3f} s before the fault was injected"))
    if verified is None:
        return RtoMeasurement(None, definition, None, verification_s, note=(
            "the service is recorded back, but the verification after it did not pass: "
            "not proven, so no RTO"))
    assert verified_s is not None
    if service_s > verified_s:
        return RtoMeasurement(None, definition, verified_s, verification_s, error=(
            f"the service is recorded back {service_s - verified_s:.3f} s after the "
            f"verification that proved it ended"))
    return RtoMeasurement(service_s, definition, verified_s, verification_s)


def compute_rto(events: list[Event] | tuple[Event, ...]) -> float | None:
    """The conservative verified RTO: seconds from ``fault.injected`` to ``recovery.verified``
    on the monotonic clock. None when either event is missing: a recovery never verified has
    no RTO, not an RTO of zero. (The objective is judged on :func:`measure_rto`'s service RTO.)
    """
    t0 = event_by_name(events, "fault.injected")
    t1 = event_by_name(events, "recovery.verified")
    if t0 is None or t1 is None:
        return None
    return t1.mono - t0.mono


def compute_service_rto(events: list[Event] | tuple[Event, ...]) -> float | None:
    """The service RTO (see :func:`measure_rto`); raises :class:`RtoError` with the reason when
    the events make it impossible."""
    m = measure_rto(events)
    if m.error is not None:
        raise RtoError(m.error)
    return m.service_s


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


__all__ = ["LOAD_RECOVERY_MEASURED", "SERVICE_RECOVERED", "RtoDefinition", "RtoError",
           "RtoMeasurement", "compute_rto", "compute_service_rto", "last_event", "measure_rto",
           "rto_breakdown"]
