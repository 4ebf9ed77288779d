"""How many requests/s can drillbook's load generator send from this machine?

Runs the real load generator (harness.load, locust in its own process) against the lab's inference
endpoint, once in one process and once in locust's distributed mode (2 worker processes), and
prints each figure next to a baseline: the same requests sent by a plain-Python client
(``http.client`` keep-alive connections in threads, spread over 2 processes) with no locust at all.
It also prints the CPU the generator itself used, in cores: a generator near 1.0 core per process,
or well below the baseline, is the limit; a generator matching the baseline means the endpoint is.

    .venv/bin/python bench/load_ceiling.py [--users 64] [--duration 10] [--lab-dir DIR]

Without ``--lab-dir`` it brings up a lab in a temporary directory and destroys it afterwards; with
one that already holds a lab, it reuses it and leaves it running. Figures are noisy on a shared
machine: the load average is printed with each one.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import multiprocessing as mp
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.load import LoadProfile, LoadRun, failure_reasons, summarize
from lab.stack import MODEL_NAME, Lab

MiB = 1024 * 1024


@dataclass
class Figure:
    name: str
    rps: float
    failures: int
    p50_ms: float | None
    p95_ms: float | None
    cpu_cores: float
    load_avg: float
    reasons: dict[str, int]


def _children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_locust(url: str, inputs: list[list[float]], users: int, duration: float, workers: int,
               log_dir: Path) -> Figure:
    load_avg = os.getloadavg()[0]
    cpu0 = _children_cpu_s()
    # locust warns above 100 users/s per process; the ramp-up seconds are left out below
    spawn_rate = 100.0 * max(1, workers)
    ramp_s = math.ceil(users / spawn_rate)
    profile = LoadProfile(url=url, model=MODEL_NAME, inputs=inputs, users=users,
                          spawn_rate=spawn_rate, duration_s=duration + ramp_s, workers=workers)
    with LoadRun(profile, log_dir=log_dir) as run:
        samples = run.wait(timeout_s=duration + ramp_s + 60)
    cpu = _children_cpu_s() - cpu0
    steady = samples[ramp_s:]
    s = summarize(steady)
    name = "locust, 1 process" if workers == 0 else f"locust, {workers} distributed workers"
    wall = sum(x.span_s for x in samples) or duration
    return Figure(name, float(s["goodput_rps"] or 0.0), int(s["failures"] or 0),
                  _f(s["p50_ms"]), _f(s["p95_ms"]), cpu / wall, load_avg,
                  failure_reasons(steady))


def _f(v: float | None) -> float | None:
    return None if v is None else float(v)


def _plain_client(url: str, bodies: list[bytes], threads: int, duration: float,
                  out: mp.Queue) -> None:  # type: ignore[type-arg]
    """One baseline process: ``threads`` keep-alive connections sending back to back."""
    parts = urlsplit(url)
    path = f"/v2/models/{MODEL_NAME}/infer"
    lock = threading.Lock()
    totals = {"ok": 0, "failed": 0}
    reasons: dict[str, int] = {}
    latencies: list[float] = []
    start = time.monotonic()
    end = start + duration

    def user(offset: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=2)
        ok = failed = 0
        lat: list[float] = []
        i = offset
        while time.monotonic() < end:
            t = time.perf_counter()
            try:
                conn.request("POST", path, bodies[i % len(bodies)],
                             {"Content-Type": "application/json"})
                resp = conn.getresponse()
                body = resp.read()
                if resp.status == 200 and b'"outputs"' in body:
                    ok += 1
                    if time.monotonic() - start >= 1.0:  # same steady window as locust's
                        lat.append((time.perf_counter() - t) * 1000)
                else:
                    failed += 1
            except (OSError, http.client.HTTPException) as exc:
                failed += 1
                with lock:
                    key = f"{type(exc).__name__}: {exc}"[:120]
                    reasons[key] = reasons.get(key, 0) + 1
                conn.close()
                conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                                  timeout=2)
            i += 1
        with lock:
            totals["ok"] += ok
            totals["failed"] += failed
            latencies.extend(lat)

    pool = [threading.Thread(target=user, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    out.put((totals["ok"], totals["failed"], latencies, time.monotonic() - start, reasons))


def run_plain(url: str, inputs: list[list[float]], users: int, duration: float,
              processes: int = 2) -> Figure:
    load_avg = os.getloadavg()[0]
    bodies = [json.dumps({"inputs": [{"name": "input", "shape": [1, len(r)], "datatype": "FP32",
                                      "data": r}]}).encode() for r in inputs]
    ctx = mp.get_context("spawn")
    q: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    per = [users // processes + (1 if k < users % processes else 0) for k in range(processes)]
    cpu0 = _children_cpu_s()
    procs = [ctx.Process(target=_plain_client, args=(url, bodies, n, duration, q)) for n in per]
    for p in procs:
        p.start()
    results = [q.get(timeout=duration + 60) for _ in procs]
    for p in procs:
        p.join()
    cpu = _children_cpu_s() - cpu0
    ok = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    wall = max(r[3] for r in results)
    lat = sorted(x for r in results for x in r[2])

    def pct(q_: float) -> float | None:
        return lat[max(0, int(q_ * len(lat)) - 1)] if lat else None

    reasons: dict[str, int] = {}
    for r in results:
        for k, n in r[4].items():
            reasons[k] = reasons.get(k, 0) + n
    return Figure(f"baseline: http.client, {processes} processes x {users // processes} threads",
                  ok / wall, failed, pct(0.5), pct(0.95), cpu / wall, load_avg, reasons)


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "-" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--users", type=int, default=64, help="concurrent users (default 64)")
    ap.add_argument("--duration", type=float, default=10.0, help="steady seconds per run")
    ap.add_argument("--workers", type=int, default=2, help="locust workers in distributed mode")
    ap.add_argument("--lab-dir", type=Path, help="reuse the lab in this directory")
    args = ap.parse_args(argv)

    own = args.lab_dir is None or not (args.lab_dir / "lab.json").exists()
    tmp = Path(tempfile.mkdtemp(prefix="drillbook-bench-"))
    root = tmp / "lab" if args.lab_dir is None else args.lab_dir
    lab = Lab(root, model_size=4 * MiB)
    try:
        t = time.monotonic()
        lab.up(progress=lambda m: None)
        print(f"lab {'up' if own else 'reused'} in {time.monotonic() - t:.1f} s at {root}")
        inputs = json.loads((lab.asset_dir / "golden.json").read_text())["inputs"]
        url = lab.node_url
        print(f"endpoint {url}/v2/models/{MODEL_NAME}/infer, {len(inputs)} input rows of "
              f"{len(inputs[0])} floats; {args.users} users; {args.duration:.0f} s steady per "
              f"run; {os.cpu_count()} CPUs shared by the endpoint, the generator and anything "
              f"else running")
        base = run_plain(url, inputs, args.users, args.duration)
        figures = [run_locust(url, inputs, args.users, args.duration, 0, tmp / "local"),
                   run_locust(url, inputs, args.users, args.duration, args.workers,
                              tmp / "distributed")]
        head = (f"{'configuration':<46} {'req/s':>7} {'vs base':>8} {'p50 ms':>7} "
                f"{'p95 ms':>7} {'failed':>7} {'gen CPU':>8} {'req/CPU-s':>9} {'load1':>6}")
        print(head)
        print("-" * len(head))
        for f in [*figures, base]:
            ratio = f"{f.rps / base.rps:.0%}" if base.rps and f is not base else "(base)"
            per_cpu = f"{f.rps / f.cpu_cores:.0f}" if f.cpu_cores > 0 else "-"
            print(f"{f.name:<46} {f.rps:>7.0f} {ratio:>8} {_fmt(f.p50_ms):>7} "
                  f"{_fmt(f.p95_ms):>7} {f.failures:>7} {f.cpu_cores:>8.2f} {per_cpu:>9} "
                  f"{f.load_avg:>6.2f}")
        print("req/s: answered requests per second; gen CPU: CPU seconds the generator's processes "
              "used per wall second (cores); req/CPU-s: answered requests per generator "
              "CPU-second; load1: 1-minute load average when the run began")
        for f in [*figures, base]:
            if f.reasons:
                top = ", ".join(f"{k} x{n}" for k, n in list(f.reasons.items())[:3])
                print(f"failures, {f.name}: {top}")
        cpus = os.cpu_count() or 1
        busiest = max(f.load_avg for f in [*figures, base])
        if busiest > cpus:
            print(f"the machine was busy (load average up to {busiest:.1f} on {cpus} CPUs): "
                  f"these figures are lower bounds, and this run cannot tell whether the endpoint "
                  f"or the generator was the limit")
        elif figures[0].cpu_cores < 0.8:
            print("the one-process generator stayed below 0.8 of a core while the machine had "
                  "CPU to spare: at these settings the endpoint, not the load generator, is "
                  "the limit")
        else:
            print("the one-process generator used most of a core: it may be the limit; compare "
                  "with the baseline and the distributed figure")
    finally:
        if own:
            lab.destroy()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
