"""Integration tests of the load generator against the lab's inference node: a real locust
process (local and distributed) sending real inputs, per-second samples streamed back, and the
process bounds (duration, stop(), harness death)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from harness.load import LoadProfile, LoadRun, SecondSample, failure_reasons, summarize
from lab.procs import free_port
from lab.stack import MODEL_NAME, Lab

pytestmark = pytest.mark.lab


def golden_inputs(lab: Lab) -> list[list[float]]:
    rows: list[list[float]] = json.loads((lab.asset_dir / "golden.json").read_text())["inputs"]
    return rows


def profile(lab: Lab, **kw: object) -> LoadProfile:
    base: dict[str, object] = {"url": lab.node_url, "model": MODEL_NAME,
                               "inputs": golden_inputs(lab), "users": 4, "duration_s": 5.0}
    return LoadProfile(**{**base, **kw})  # type: ignore[arg-type]


def group_alive(pgid: int) -> bool:
    """Any live (non-zombie) process left in the worker's process group?"""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def assert_contiguous(samples: list[SecondSample]) -> None:
    for a, b in pairwise(samples):
        assert b.utc - a.utc == timedelta(seconds=1), (a, b)


def test_load_on_the_lab_node_streams_a_sample_each_second(lab: Lab, tmp_path: Path) -> None:
    run = LoadRun(profile(lab, duration_s=5.0), log_dir=tmp_path)
    run.start()
    assert run.pid is not None and run.started_utc is not None
    t_start = time.monotonic()
    arrivals: list[float] = []
    seen = 0
    while run.running and time.monotonic() - t_start < 15:
        n = len(run.samples())
        if n > seen:
            arrivals.append(time.monotonic() - t_start)
            seen = n
        time.sleep(0.05)
    samples = run.stop()
    # it ended by itself at the duration bound, not because we stopped it
    assert run.end_reason == "duration"
    assert len(samples) == 5, samples
    assert samples[0].utc == run.started_utc
    assert_contiguous(samples)
    assert all(s.requests > 0 and s.failures == 0 and s.span_s == 1.0 for s in samples), samples
    assert all(s.p50_ms is not None and s.p95_ms is not None and s.p99_ms is not None
               and 0 < s.p50_ms <= s.p95_ms <= s.p99_ms for s in samples), samples
    # streamed while running, one by one, not all at the end
    assert len(arrivals) >= 4 and arrivals[0] < 2.5, arrivals
    total = summarize(samples)
    assert total["failures"] == 0 and total["requests"] == sum(s.requests for s in samples)
    assert total["p95_ms"] is not None
    assert not group_alive(run.pid)


def test_stop_ends_the_worker_early(lab: Lab, tmp_path: Path) -> None:
    run = LoadRun(profile(lab, duration_s=120.0), log_dir=tmp_path)
    with run:
        pid = run.pid
        assert pid is not None
        deadline = time.monotonic() + 10
        while len(run.samples()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        t = time.monotonic()
        samples = run.stop()
        took = time.monotonic() - t
    assert took < 5.0, took
    assert run.end_reason == "stopped"
    assert not run.running and not group_alive(pid)
    assert len(samples) >= 2 and all(s.failures == 0 for s in samples)
    assert run.stop() == samples  # idempotent


def test_a_closed_port_gives_failures_not_a_crash(lab: Lab, tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    with LoadRun(profile(lab, url=closed, duration_s=3.0), log_dir=tmp_path) as run:
        samples = run.wait(timeout_s=15)
    assert run.end_reason == "duration" and run.error is None
    assert len(samples) == 3
    assert all(s.requests > 0 and s.failures == s.requests for s in samples), samples
    assert all(s.p95_ms is None for s in samples)
    assert failure_reasons(samples) == {
        "ConnectionRefusedError: [Errno 111] Connection refused": sum(s.failures for s in samples)}
    # users pause after a failure instead of spinning: 4 users, 0.1 s pause, at most ~40/s
    assert all(s.requests <= 60 for s in samples), samples


def test_an_endpoint_that_never_answers_gives_timeouts(lab: Lab, tmp_path: Path) -> None:
    # a listening socket nobody accepts from: connections complete, answers never come (what a
    # SIGSTOPped node looks like from outside)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with LoadRun(profile(lab, url=url, duration_s=3.0, request_timeout_s=0.5),
                     log_dir=tmp_path) as run:
            samples = run.wait(timeout_s=15)
    assert run.end_reason == "duration" and len(samples) == 3
    reasons = failure_reasons(samples)
    assert list(reasons) == ["TimeoutError: timed out"], reasons
    # 4 users, 0.5 s timeout + 0.1 s pause: about 6-7 failures a second, never an answer
    assert all(s.answered == 0 for s in samples)
    assert 10 <= sum(s.failures for s in samples) <= 30, samples


def test_distributed_mode_merges_workers_into_one_stream(lab: Lab, tmp_path: Path) -> None:
    run = LoadRun(profile(lab, duration_s=4.0, workers=2), log_dir=tmp_path)
    with run:
        pid = run.pid
        assert pid is not None
        # one master and two locust worker processes, all in the run's process group
        members = [p for p in Path("/proc").iterdir() if p.name.isdigit()
                   and _pgid(p) == pid]
        assert len(members) == 3, members
        samples = run.wait(timeout_s=30)
    assert run.end_reason == "duration"
    assert len(samples) == 4, samples
    assert_contiguous(samples)
    assert all(s.requests > 0 and s.failures == 0 for s in samples), samples
    assert all(sum(n for _, n in s.histogram) == s.answered for s in samples)
    assert not group_alive(pid)


def _pgid(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def test_the_worker_ends_when_the_harness_dies(lab: Lab, tmp_path: Path) -> None:
    code = (
        "import json, os, sys\n"
        "from pathlib import Path\n"
        "from harness.load import LoadProfile, LoadRun\n"
        "p = LoadProfile(**json.loads(sys.argv[1]))\n"
        "run = LoadRun(p, log_dir=Path(sys.argv[2]))\n"
        "run.start()\n"
        "print(run.pid, flush=True)\n"
        "os._exit(0)  # the harness dies without stopping the load\n"
    )
    p = profile(lab, duration_s=120.0)
    spec = json.dumps({"url": p.url, "model": p.model, "inputs": p.inputs,
                       "users": p.users, "duration_s": p.duration_s})
    out = subprocess.run([sys.executable, "-c", code, spec, str(tmp_path)], capture_output=True,
                         text=True, timeout=60, check=True)
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 10
    while group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if group_alive(pid):  # do not leave it running if the test fails
        os.killpg(pid, 9)
        pytest.fail("the load worker outlived the harness")
