"""RTO/RPO arithmetic and verdict plumbing from recorded events (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from harness.model import (
    Event,
    Objective,
    Phase,
    RestorePoint,
    Verdict,
    compute_rpo,
    compute_rto,
    iso,
    rto_breakdown,
)

T0 = datetime(2026, 11, 25, 6, 0, 0, tzinfo=UTC)


def ev(seq: int, name: str, mono: float, utc: datetime | None = None) -> Event:
    return Event(seq, name, Phase.INJECT, utc or T0 + timedelta(seconds=mono), mono)


def test_rto_is_injection_to_verified_on_the_monotonic_clock() -> None:
    # wall clock jumps back an hour (NTP step) between the two events: RTO must not care
    events = [ev(0, "fault.injected", 100.0), ev(1, "fault.detected", 100.5),
              ev(2, "recovery.verified", 142.25, T0 - timedelta(hours=1))]
    assert compute_rto(events) == pytest.approx(42.25)


def test_rto_is_none_when_recovery_was_never_verified() -> None:
    assert compute_rto([ev(0, "fault.injected", 1.0)]) is None
    assert compute_rto([]) is None


def test_rpo_is_injection_minus_restore_point_creation() -> None:
    point = RestorePoint("restic-snapshot", "abc", T0 - timedelta(minutes=30), "repo")
    events = [ev(0, "fault.injected", 5.0, T0)]
    assert compute_rpo(events, point) == pytest.approx(1800.0)
    assert compute_rpo(events, None) is None
    assert compute_rpo([], point) is None


def test_objective_unmeasured_is_never_met() -> None:
    assert Objective.evaluate(None, 60).met is None
    assert Objective.evaluate(59.9, 60).met is True
    assert Objective.evaluate(60.1, 60).met is False


def test_verdict_exit_codes_are_distinct() -> None:
    codes = {v.exit_code for v in Verdict}
    assert codes == {0, 1, 2}
    assert Verdict.INCONCLUSIVE.exit_code != Verdict.PASS.exit_code


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError):
        iso(datetime(2026, 1, 1))
    assert iso(T0).endswith("Z")


def test_breakdown_has_detect_time() -> None:
    events = [ev(0, "fault.injected", 10.0), ev(1, "fault.detected", 10.75)]
    assert rto_breakdown(events, []) == {"detect": pytest.approx(0.75)}
