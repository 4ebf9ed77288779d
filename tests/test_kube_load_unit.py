"""Where the kube drills look for recovery in the load samples (no lab, no load generator).

A cluster fault can hurt the service only seconds after it is injected (NotReady after missed
heartbeats, eviction after the toleration time): the SLO holding in the first seconds after the
fault is not a recovery. Recovery is searched after detection and after the last second that
missed the SLO before the runbook finished.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from harness.load import SLO, SecondSample, recovered_at
from harness.runbook.kube_load import Golden, ServiceLoad

T0 = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)


def second(i: int, p95: float) -> SecondSample:
    return SecondSample(T0 + timedelta(seconds=i), 50, 0, p95 / 2, p95, p95)


def load_with(events: dict[str, int]) -> ServiceLoad:
    evs = [SimpleNamespace(name=n, utc=T0 + timedelta(seconds=s)) for n, s in events.items()]
    ctx = SimpleNamespace(journal=SimpleNamespace(events=evs))
    load = ServiceLoad(ctx, None, Golden([], []), 1)  # type: ignore[arg-type]
    load.base_rps = 50.0
    return load


def test_recovery_is_searched_after_the_damage_not_before_it() -> None:
    slo = SLO(max_error_rate=0.01, max_p95_ms=150, min_throughput_ratio=0.8, sustain_s=3)
    # fine for 4 s (the node is not NotReady yet), bad for 3 s, fine again from second 7
    samples = [second(i, 300 if 4 <= i < 7 else 100) for i in range(12)]
    load = load_with({"fault.injected": 0, "fault.detected": 2, "recovery.completed": 9})
    naive = recovered_at(samples, slo, 50.0, T0)
    assert naive == T0  # what measuring from the fault alone would claim
    since = load.since(samples, slo)
    assert since == T0 + timedelta(seconds=7)
    assert recovered_at(samples, slo, 50.0, since) == T0 + timedelta(seconds=7)


def test_without_damage_recovery_is_searched_from_detection() -> None:
    slo = SLO(max_error_rate=0.01, max_p95_ms=150, min_throughput_ratio=0.8, sustain_s=3)
    samples = [second(i, 100) for i in range(8)]
    load = load_with({"fault.injected": 0, "fault.detected": 2})
    assert load.since(samples, slo) == T0 + timedelta(seconds=2)
