"""Unit tests for harness.load's judging of samples (hand-made samples, no process started), the
profile's validation, and the rule that the harness process never imports locust."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.load import (
    SLO,
    LoadError,
    LoadProfile,
    LoadRun,
    SecondSample,
    availability_timeline,
    baseline_rps,
    failure_reasons,
    recovered_at,
    slo_holds,
    summarize,
)

T = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
SLO_ = SLO(max_error_rate=0.01, max_p95_ms=500.0, min_throughput_ratio=0.8, sustain_s=3.0)
BASE = 100.0


def sec(i: int, requests: int = 100, failures: int = 0, p95: float | None = 20.0,
        span: float = 1.0, hist: tuple[tuple[float, int], ...] = ()) -> SecondSample:
    return SecondSample(T + timedelta(seconds=i), requests, failures,
                        None if p95 is None else p95 / 2, p95,
                        None if p95 is None else p95 * 1.5, span, hist)


# --- slo_holds -----------------------------------------------------------------------------------

def test_a_good_second_holds() -> None:
    assert slo_holds(sec(0), SLO_, BASE)
    assert slo_holds(sec(0, requests=81, failures=0), SLO_, BASE)  # 81 >= 0.8 * 100


@pytest.mark.parametrize("sample, why", [
    (sec(0, requests=100, failures=2), "error rate 2% > 1%"),
    (sec(0, p95=501.0), "p95 over 500 ms"),
    (sec(0, requests=79), "throughput 79/s < 80/s"),
    (sec(0, requests=81, failures=1), "goodput 80/s is enough, but error rate 1.2% > 1%"),
    (sec(0, requests=0, p95=None), "silence is not service"),
    (sec(0, requests=50, failures=50, p95=None), "all failed"),
    (sec(0, requests=40, span=0.5, failures=0, p95=600.0), "partial second, slow"),
])
def test_a_bad_second_does_not_hold(sample: SecondSample, why: str) -> None:
    assert not slo_holds(sample, SLO_, BASE), why


def test_goodput_counts_only_answered_requests_and_uses_the_span() -> None:
    # 200 requests, 1 failure: error rate 0.5% ok; goodput 199/s
    assert slo_holds(sec(0, requests=200, failures=1), SLO_, BASE)
    # a cut-off last second: 45 answered in 0.5 s is 90/s, which is within the ratio
    assert slo_holds(sec(0, requests=45, span=0.5), SLO_, BASE)
    assert not slo_holds(sec(0, requests=35, span=0.5), SLO_, BASE)


def test_baseline_must_be_positive() -> None:
    with pytest.raises(ValueError, match="baseline_rps"):
        slo_holds(sec(0), SLO_, 0.0)


# --- recovered_at --------------------------------------------------------------------------------

def drill() -> list[SecondSample]:
    """Baseline 0..4, fault at 5.5: failures 5..9, one good second at 10, a bad one at 11, then
    good from 12 on."""
    out = [sec(i) for i in range(5)]
    out += [sec(i, requests=30, failures=30, p95=None) for i in range(5, 10)]
    out += [sec(10), sec(11, p95=900.0)]
    out += [sec(i) for i in range(12, 20)]
    return out


def test_recovered_at_needs_a_sustained_window() -> None:
    after = T + timedelta(seconds=5.5)
    assert recovered_at(drill(), SLO_, BASE, after) == T + timedelta(seconds=12)


def test_recovered_at_ignores_seconds_that_began_before_the_fault() -> None:
    samples = [sec(i) for i in range(10)]  # the fault did nothing visible
    # the second starting at 3 straddles 3.5, so the first whole one after the fault is 4
    assert recovered_at(samples, SLO_, BASE, T + timedelta(seconds=3.5)) == T + timedelta(seconds=4)
    assert recovered_at(samples, SLO_, BASE, T + timedelta(seconds=3)) == T + timedelta(seconds=3)


def test_recovered_at_none_when_never_sustained() -> None:
    samples = drill()[:-6]  # good from 12 to 13 only: 2 s < 3 s
    assert recovered_at(samples, SLO_, BASE, T + timedelta(seconds=5.5)) is None
    assert recovered_at([], SLO_, BASE, T) is None


def test_a_missing_second_breaks_the_run() -> None:
    samples = [sec(0), sec(1), sec(3), sec(4), sec(5)]
    assert recovered_at(samples, SLO_, BASE, T) == T + timedelta(seconds=3)


def test_order_of_samples_does_not_matter() -> None:
    samples = list(reversed(drill()))
    assert recovered_at(samples, SLO_, BASE, T + timedelta(seconds=5.5)) == \
        T + timedelta(seconds=12)


# --- summarize, baseline, timeline ---------------------------------------------------------------

def test_summarize_totals_and_exact_percentiles_from_histograms() -> None:
    a = sec(0, requests=10, failures=0, hist=((10.0, 9), (100.0, 1)))
    b = sec(1, requests=12, failures=2, hist=((12.0, 10),))
    c = sec(2, requests=3, failures=3, p95=None, span=0.5)
    s = summarize([a, b, c])
    assert (s["requests"], s["failures"], s["seconds"]) == (25, 5, 2.5)
    assert s["error_rate"] == pytest.approx(0.2)
    assert s["rps"] == pytest.approx(10.0)
    assert s["goodput_rps"] == pytest.approx(8.0)
    # 20 answered: 9 x 10 ms, 10 x 12 ms, 1 x 100 ms (nearest rank)
    assert (s["p50_ms"], s["p95_ms"], s["p99_ms"]) == (12.0, 12.0, 100.0)


def test_summarize_without_histograms_gives_no_percentiles_rather_than_a_guess() -> None:
    s = summarize([sec(0), sec(1)])
    assert s["requests"] == 200 and s["p95_ms"] is None


def test_summarize_empty() -> None:
    s = summarize([])
    assert (s["requests"], s["error_rate"], s["rps"], s["p95_ms"]) == (0, None, None, None)


def test_baseline_rps_is_goodput_over_the_window() -> None:
    assert baseline_rps([sec(0, requests=100, failures=10), sec(1, requests=50, span=0.5)]) == \
        pytest.approx(140 / 1.5)
    assert baseline_rps([]) == 0.0


def test_availability_timeline_rows_are_relative_to_t0_and_json_ready() -> None:
    import json

    t0 = T + timedelta(seconds=2.5)
    rows = availability_timeline(list(reversed(drill()[:8])), t0)
    assert [r["since_t0_s"] for r in rows] == [-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 4.5]
    assert rows[6]["failures"] == 30 and rows[6]["error_rate"] == 1.0
    assert rows[6]["goodput_rps"] == 0.0 and rows[6]["p95_ms"] is None
    assert rows[0]["utc"] == T.isoformat()
    json.dumps(rows)


# --- profile and process separation --------------------------------------------------------------

@pytest.mark.parametrize("change, needle", [
    ({"url": "127.0.0.1:1"}, "http(s)"),
    ({"inputs": []}, "inputs"),
    ({"users": 0}, "users"),
    ({"workers": 5, "users": 4}, "idle"),
    ({"duration_s": 0}, "duration_s"),
    ({"request_timeout_s": float("inf")}, "request_timeout_s"),
    ({"failure_pause_s": -1.0}, "failure_pause_s"),
])
def test_bad_profiles_are_refused(change: dict[str, object], needle: str) -> None:
    base: dict[str, object] = {"url": "http://127.0.0.1:1", "model": "m", "inputs": [[0.0]]}
    profile = LoadProfile(**{**base, **change})  # type: ignore[arg-type]
    with pytest.raises(LoadError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        profile.validate()


def test_the_harness_process_never_imports_locust_or_gevent() -> None:
    code = ("import sys, harness.load, harness.inventory, harness.cli\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent'))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_failure_reasons_add_up_across_seconds_most_frequent_first() -> None:
    a = SecondSample(T, 10, 4, None, None, None, errors=(("refused", 3), ("HTTP 503", 1)))
    b = SecondSample(T + timedelta(seconds=1), 5, 5, None, None, None,
                     errors=(("timed out", 4), ("HTTP 503", 1)))
    assert list(failure_reasons([a, b]).items()) == [("timed out", 4), ("refused", 3),
                                                      ("HTTP 503", 2)]
    assert availability_timeline([a], T)[0]["errors"] == {"refused": 3, "HTTP 503": 1}


def test_a_worker_that_cannot_start_raises_load_error(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # a real process that exits at once without a word, as a broken interpreter would
    monkeypatch.setattr(sys, "executable", "/bin/false")
    run = LoadRun(LoadProfile(url="http://127.0.0.1:1", model="m", inputs=[[0.0]]),
                  log_dir=tmp_path)
    with pytest.raises(LoadError, match="exited before starting"):
        run.start()
    assert not run.running and run.samples() == []
    assert (tmp_path / "load-profile.json").is_file()
