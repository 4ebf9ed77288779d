"""Load through a drill: run locust in its own process, collect per-second samples, judge the SLO.

The harness side of load generation. :class:`LoadRun` starts ``python -m harness.load_worker``
(locust, headless, FastHttpUser speaking the KServe v2 / Open Inference Protocol with real input
rows) and reads the :class:`SecondSample` it writes each second as a JSON line. This module never
imports locust: locust monkey-patches the standard library with gevent when imported, which breaks
the SSL contexts that boto3 and urllib3 have already made in this process.

From the samples: :func:`slo_holds` judges one second against an :class:`SLO` and the baseline
throughput, :func:`recovered_at` finds when service came back (the first instant from which the SLO
held for ``sustain_s`` seconds without a break), :func:`summarize` totals a window, and
:func:`availability_timeline` gives the JSON rows the evidence records.

Definitions used throughout:

- a *request* is one completed inference call; a *failure* is one that was refused, timed out
  (``request_timeout_s``) or answered anything but HTTP 200 with outputs;
- latency percentiles are over the answered (successful) requests of that second only; failures
  are judged by the error rate, so a refused connection's 0 ms never flatters the latency;
- throughput is answered requests per second (goodput), compared with the baseline's.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from harness.errors import DrillbookError

# Seconds allowed for the worker process to import locust, start its workers and begin.
START_TIMEOUT_S = 45.0
# Seconds allowed after SIGTERM for the worker to write its last samples before it is killed.
STOP_GRACE_S = 5.0


class LoadError(DrillbookError):
    """The load generator could not run (bad profile, worker failed to start or died)."""


@dataclass(frozen=True)
class LoadProfile:
    """What to send, how hard and for how long. ``workers`` = 0 runs locust in one process; N runs
    locust's distributed mode on this machine (one master and N worker processes)."""

    url: str
    model: str
    inputs: list[list[float]]  # one row per request, cycled
    users: int = 4
    spawn_rate: float = 100.0
    duration_s: float = 30.0  # hard bound: the worker stops by itself
    request_timeout_s: float = 2.0
    workers: int = 0
    # a user whose request failed waits this long before the next one, as a client backing off
    # would; without it a refused port turns the users into a busy loop on this machine's CPU
    failure_pause_s: float = 0.1

    def validate(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise LoadError(f"load profile: url must be http(s) (got {self.url!r})")
        if not self.model:
            raise LoadError("load profile: model is empty")
        if not self.inputs or any(not row for row in self.inputs):
            raise LoadError("load profile: inputs must be a non-empty list of non-empty rows")
        if self.users < 1 or self.workers < 0:
            raise LoadError(f"load profile: users must be >= 1 and workers >= 0 "
                            f"(got {self.users}, {self.workers})")
        if self.workers > self.users:
            raise LoadError(f"load profile: {self.workers} workers for {self.users} users "
                            f"would leave workers idle")
        if not (math.isfinite(self.failure_pause_s) and self.failure_pause_s >= 0):
            raise LoadError(f"load profile: failure_pause_s must be >= 0 "
                            f"(got {self.failure_pause_s!r})")
        for name in ("spawn_rate", "duration_s", "request_timeout_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise LoadError(f"load profile: {name} must be a positive number (got {v!r})")


@dataclass(frozen=True)
class SecondSample:
    """Requests that completed in one UTC second (``span_s`` < 1 only for a run's cut-off last
    second). Percentiles are this second's own, over answered requests; None when none answered.
    ``histogram`` is (latency ms to 3 significant digits, count) pairs, for merging windows."""

    utc: datetime
    requests: int
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    span_s: float = 1.0
    histogram: tuple[tuple[float, int], ...] = field(default=(), repr=False)
    errors: tuple[tuple[str, int], ...] = ()  # (failure reason, count): refused, timed out, HTTP

    @property
    def end(self) -> datetime:
        return self.utc + timedelta(seconds=self.span_s)

    @property
    def answered(self) -> int:
        return self.requests - self.failures

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.requests if self.requests else None

    @property
    def goodput_rps(self) -> float:
        return self.answered / self.span_s if self.span_s > 0 else 0.0


#: seconds a drill's continuous load may outlast the runbook while waiting for the SLO to
#: hold (the fleet and the cluster drills both wait this long)
RECOVERY_SLACK_S = 5.0


@dataclass(frozen=True)
class SLO:
    """What "in service" means for an endpoint, judged per second."""

    max_error_rate: float = 0.01
    max_p95_ms: float = 500.0
    min_throughput_ratio: float = 0.8
    sustain_s: float = 5.0


@dataclass(frozen=True)
class LoadSettings:
    """The inventory's ``load:`` section: how drills load an endpoint."""

    users: int = 4
    spawn_rate: float = 100.0
    baseline_s: float = 10.0
    acceptance_s: float = 10.0
    workers: int = 0

    def profile(self, url: str, model: str, inputs: list[list[float]], *, duration_s: float,
                request_timeout_s: float = 2.0) -> LoadProfile:
        return LoadProfile(url=url, model=model, inputs=inputs, users=self.users,
                           spawn_rate=self.spawn_rate, duration_s=duration_s,
                           request_timeout_s=request_timeout_s, workers=self.workers)


# --- judging samples -----------------------------------------------------------------------------


def slo_holds(sample: SecondSample, slo: SLO, baseline_rps: float) -> bool:
    """Did this second meet the SLO? A second with no answered request never does: silence is not
    service. ``baseline_rps`` is the answered requests/s measured before the fault."""
    if baseline_rps <= 0:
        raise ValueError(f"baseline_rps must be > 0 (got {baseline_rps})")
    if sample.requests == 0 or sample.answered == 0 or sample.p95_ms is None:
        return False
    if sample.failures / sample.requests > slo.max_error_rate:
        return False
    if sample.p95_ms > slo.max_p95_ms:
        return False
    return sample.goodput_rps >= slo.min_throughput_ratio * baseline_rps


def recovered_at(samples: list[SecondSample], slo: SLO, baseline_rps: float,
                 after: datetime) -> datetime | None:
    """The first instant after ``after`` from which the SLO held for ``sustain_s`` consecutive
    seconds (a missing second breaks the run), or None if it never did. Seconds that began before
    ``after`` are not considered: they mix traffic from before the fault."""
    run_start: datetime | None = None
    run_end: datetime | None = None
    held = 0.0
    for s in sorted(samples, key=lambda x: x.utc):
        if s.utc < after:
            continue
        contiguous = run_end is not None and abs((s.utc - run_end).total_seconds()) < 1e-3
        if not slo_holds(s, slo, baseline_rps):
            run_start, run_end, held = None, None, 0.0
            continue
        if run_start is None or not contiguous:
            run_start, held = s.utc, 0.0
        held += s.span_s
        run_end = s.end
        if held >= slo.sustain_s - 1e-9:
            return run_start
    return None


def _merged_histogram(samples: Iterable[SecondSample]) -> list[tuple[float, int]] | None:
    """All answered requests' latencies, or None if some second's answered requests have no
    histogram (hand-made samples): then no honest overall percentile exists."""
    merged: dict[float, int] = {}
    for s in samples:
        if s.answered and sum(n for _, n in s.histogram) != s.answered:
            return None
        for ms, n in s.histogram:
            merged[ms] = merged.get(ms, 0) + n
    return sorted(merged.items())


def _hist_percentile(hist: list[tuple[float, int]], q: float) -> float | None:
    total = sum(n for _, n in hist)
    if total == 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for ms, n in hist:
        seen += n
        if seen >= rank:
            return ms
    return hist[-1][0]


def summarize(samples: list[SecondSample]) -> dict[str, float | int | None]:
    """Totals over a window: requests, failures, error_rate, rps (all requests per second) and
    goodput_rps (answered per second) over the seconds covered, and p50/p95/p99 over every answered
    request (from the merged histograms, within 0.5%; None without histograms or answers)."""
    requests = sum(s.requests for s in samples)
    failures = sum(s.failures for s in samples)
    span = sum(s.span_s for s in samples)
    hist = _merged_histogram(samples)
    out: dict[str, float | int | None] = {
        "seconds": round(span, 3),
        "requests": requests,
        "failures": failures,
        "error_rate": failures / requests if requests else None,
        "rps": requests / span if span > 0 else None,
        "goodput_rps": (requests - failures) / span if span > 0 else None,
    }
    for name, q in (("p50_ms", 0.50), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        out[name] = _hist_percentile(hist, q) if hist is not None else None
    return out


def failure_reasons(samples: list[SecondSample]) -> dict[str, int]:
    """Why requests failed over a window (reason -> count), most frequent first."""
    out: dict[str, int] = {}
    for s in samples:
        for reason, n in s.errors:
            out[reason] = out.get(reason, 0) + n
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def availability_timeline(samples: list[SecondSample], t0: datetime) -> list[dict[str, Any]]:
    """One JSON-ready row per second for the evidence: seconds since ``t0`` (negative before the
    fault), counts, error rate, throughput and this second's percentiles."""
    rows = []
    for s in sorted(samples, key=lambda x: x.utc):
        rows.append({
            "since_t0_s": round((s.utc - t0).total_seconds(), 3),
            "utc": s.utc.isoformat(),
            "span_s": s.span_s,
            "requests": s.requests,
            "failures": s.failures,
            "error_rate": None if s.error_rate is None else round(s.error_rate, 6),
            "goodput_rps": round(s.goodput_rps, 3),
            "p50_ms": s.p50_ms,
            "p95_ms": s.p95_ms,
            "p99_ms": s.p99_ms,
            "errors": dict(s.errors),
        })
    return rows


def baseline_rps(samples: list[SecondSample]) -> float:
    """Answered requests per second over a baseline window (0.0 for an empty one)."""
    span = sum(s.span_s for s in samples)
    return sum(s.answered for s in samples) / span if span > 0 else 0.0


# --- running the worker --------------------------------------------------------------------------


def _sample_from_line(obj: dict[str, Any]) -> SecondSample:
    return SecondSample(
        utc=datetime.fromisoformat(obj["utc"]).astimezone(UTC),
        requests=int(obj["requests"]),
        failures=int(obj["failures"]),
        p50_ms=obj["p50_ms"], p95_ms=obj["p95_ms"], p99_ms=obj["p99_ms"],
        span_s=float(obj["span_s"]),
        histogram=tuple((float(ms), int(n)) for ms, n in obj.get("histogram", [])),
        errors=tuple(sorted((str(k), int(v)) for k, v in obj.get("errors", {}).items())),
    )


class LoadRun:
    """One load run in its own process group; a context manager (enter starts, exit stops).

    ``start()`` returns once locust is sending (or raises :class:`LoadError`); samples arrive each
    second; the worker ends by itself after ``duration_s``; ``stop()`` ends it early, waits for the
    last samples and returns them all. The worker's log is ``log_dir/load-worker.log``.
    """

    def __init__(self, profile: LoadProfile, *, log_dir: Path) -> None:
        profile.validate()
        self.profile = profile
        # absolute: the worker runs inside this directory, so a relative path would resolve twice
        self.log_dir = log_dir.resolve()
        self.log_path = self.log_dir / "load-worker.log"
        self._lock = threading.Lock()
        self._samples: list[SecondSample] = []
        self._started = threading.Event()
        self._ended = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._log: IO[bytes] | None = None
        self._stopped = False
        self.started_utc: datetime | None = None
        self.end_reason: str | None = None
        self.error: str | None = None
        self.unwritten_requests = 0
        self.unwritten_failures = 0
        # requests that completed outside every written second (after the planned end, or a
        # distributed worker's report that came after its second was written)
        self.unwritten_errors: dict[str, int] = {}

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the worker and wait until it sends load; a second call does nothing."""
        if self._proc is not None:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        profile_path = self.log_dir / "load-profile.json"
        profile_path.write_text(json.dumps(asdict(self.profile)), encoding="utf-8")
        self._log = self.log_path.open("ab")
        # its own session, so stop() can end the master and its locust workers together
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "harness.load_worker", "--profile", str(profile_path),
             "--watch-stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            start_new_session=True, cwd=self.log_dir,
            env=_worker_env())
        self._reader = threading.Thread(target=self._read, name="load-reader", daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._started.wait(0.1):
            if self._ended.is_set() or time.monotonic() > deadline:
                ended = self._ended.is_set()
                self.stop()
                why = self.error or ("exited before starting" if ended
                                     else f"did not start within {START_TIMEOUT_S:.0f} s")
                raise LoadError(f"load generator {why}; see {self.log_path}")

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            for raw in self._proc.stdout:
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue  # not ours (a library printing to stdout); the log has the rest
                kind = obj.get("type")
                if kind == "second":
                    sample = _sample_from_line(obj)
                    with self._lock:
                        self._samples.append(sample)
                elif kind == "start":
                    self.started_utc = datetime.fromisoformat(obj["utc"]).astimezone(UTC)
                    self._started.set()
                elif kind == "end":
                    self.end_reason = str(obj.get("reason"))
                    self.unwritten_requests = int(obj.get("unwritten_requests", 0))
                    self.unwritten_failures = int(obj.get("unwritten_failures", 0))
                    self.unwritten_errors = {str(k): int(v) for k, v in
                                             obj.get("unwritten_errors", {}).items()}
                elif kind == "error":
                    self.error = str(obj.get("message"))
        finally:
            self._ended.set()

    def samples(self) -> list[SecondSample]:
        """The samples that have arrived so far (a copy)."""
        with self._lock:
            return list(self._samples)

    def wait(self, timeout_s: float | None = None) -> list[SecondSample]:
        """Wait for the worker to end by itself (at most ``timeout_s``), then stop and return all."""
        limit = self.profile.duration_s + START_TIMEOUT_S + STOP_GRACE_S
        self._ended.wait(limit if timeout_s is None else min(timeout_s, limit))
        return self.stop()

    def stop(self) -> list[SecondSample]:
        """Stop early if still running (SIGTERM, then SIGKILL of the whole group after a grace),
        wait for the last samples and return every sample. Idempotent."""
        proc = self._proc
        if proc is not None and not self._stopped:
            self._stopped = True
            if proc.poll() is None:
                _signal_group(proc.pid, signal.SIGTERM, only_leader=True)
                try:
                    proc.wait(timeout=self.profile.request_timeout_s + STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    pass
            # whatever is left of the group (a stuck master, orphaned locust workers) goes now
            _signal_group(proc.pid, signal.SIGKILL, only_leader=False)
            if proc.poll() is None:
                proc.wait(timeout=STOP_GRACE_S)
            if proc.stdin is not None:
                proc.stdin.close()
            if self._reader is not None:
                self._reader.join(timeout=STOP_GRACE_S)
            if proc.stdout is not None:
                proc.stdout.close()
            if self._log is not None:
                self._log.close()
        return self.samples()


def _worker_env() -> dict[str, str]:
    """The worker must import this very harness package, installed or not."""
    root = str(Path(__file__).resolve().parent.parent)
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": root if not path else f"{root}{os.pathsep}{path}"}


def _signal_group(pid: int, sig: int, *, only_leader: bool) -> None:
    """Signal the worker (or its whole process group, which it leads); gone already is fine."""
    try:
        if only_leader:
            os.kill(pid, sig)
        else:
            os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
