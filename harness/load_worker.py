"""The load generator's own process: locust, headless, as a library; per-second stats on stdout.

Run by :class:`harness.load.LoadRun` (never imported by the harness)::

    python -m harness.load_worker --profile PROFILE.json                       # local or master
    python -m harness.load_worker --profile PROFILE.json --master-port P --deadline EPOCH   # worker

locust is imported first because it monkey-patches the standard library with gevent on import; in
the harness's own process that would break the SSL contexts boto3 already made (see STYLE.md), so
the two never share a process. ``--watch-stdin`` (what the harness passes) makes the process exit
when its stdin closes, i.e. when the harness is gone.

Users are FastHttpUser instances speaking the KServe v2 / Open Inference Protocol: each request is
``POST {url}/v2/models/{model}/infer`` with one real input row, the rows cycled. A request fails
when the connection is refused or times out or the answer is not HTTP 200 with outputs.

Every completed request is put in the bucket of the UTC second in which it completed. Each second
the finished buckets are written to stdout as JSON lines (``{"type": "second", ...}``) with that
second's own counts and percentiles (not cumulative ones) and a latency histogram the harness can
merge. In distributed mode (``workers`` > 0 in the profile) this process is locust's master: it
starts the worker processes itself, each worker sends its buckets to the master with a custom
locust message every second, and the master merges them into the same stream.

Bounds, so nothing outlives its purpose: the run ends at ``duration_s`` by itself; SIGTERM ends it
early (the last partial second is written with its real span); end of input on stdin (the harness
died) or a closed stdout ends it at once; and ``SIGALRM`` (kernel timer, default action kills the
process) fires a few seconds after the planned end in case anything above hangs.
"""

# ruff: noqa: I001  (locust must be imported before anything that touches ssl or sockets)
from locust import FastHttpUser, task
from locust.env import Environment
from locust.runners import MasterRunner, Runner, WorkerRunner

import argparse
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import gevent
import gevent.os

BUCKETS_MSG = "drillbook_buckets"
FLUSH_MSG = "drillbook_flush"
# Seconds a master waits for a slow or dead worker's buckets before writing a second without them.
MERGE_GRACE_S = 3.0
# Seconds allowed after the planned end for the final flush before SIGALRM ends the process.
EXIT_GRACE_S = 10.0
# Seconds a master waits for its workers to connect.
WORKER_CONNECT_S = 30.0


@dataclass
class Bucket:
    """Requests that completed in one UTC second."""

    requests: int = 0
    failures: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # answered requests only
    errors: dict[str, int] = field(default_factory=dict)  # failure reason -> count

    def merge(self, other: "Bucket") -> None:
        self.requests += other.requests
        self.failures += other.failures
        self.latencies_ms.extend(other.latencies_ms)
        for reason, n in other.errors.items():
            self.errors[reason] = self.errors.get(reason, 0) + n

    def to_wire(self) -> list[Any]:
        return [self.requests, self.failures, [round(x, 3) for x in self.latencies_ms],
                self.errors]

    @classmethod
    def from_wire(cls, raw: list[Any]) -> "Bucket":
        return cls(int(raw[0]), int(raw[1]), [float(x) for x in raw[2]],
                   {str(k): int(v) for k, v in raw[3].items()})


def failure_reason(exc: BaseException) -> str:
    """A short, stable name for why a request failed: refused and timed out stay apart."""
    # geventhttpclient wraps the socket error (refused, timed out) in RetriesExceeded
    inner = getattr(exc, "original", None)
    if isinstance(inner, BaseException):
        exc = inner
    text = str(exc) or type(exc).__name__
    if type(exc).__name__ not in ("CatchResponseError",):
        text = f"{type(exc).__name__}: {text}"
    return text[:120]


def percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an already sorted list; None for no data."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def histogram_key(ms: float) -> float:
    """Three significant digits: small enough to send every second, within 0.5% for merging."""
    if ms <= 0:
        return 0.0
    digits = 2 - math.floor(math.log10(ms))
    return round(ms, digits)


def second_line(second: int, bucket: Bucket, span_s: float) -> dict[str, Any]:
    ordered = sorted(bucket.latencies_ms)
    hist: dict[float, int] = {}
    for ms in ordered:
        k = histogram_key(ms)
        hist[k] = hist.get(k, 0) + 1

    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 3)

    return {
        "type": "second",
        "utc": datetime.fromtimestamp(second, UTC).isoformat(),
        "span_s": round(span_s, 3),
        "requests": bucket.requests,
        "failures": bucket.failures,
        "p50_ms": r(percentile(ordered, 0.50)),
        "p95_ms": r(percentile(ordered, 0.95)),
        "p99_ms": r(percentile(ordered, 0.99)),
        "histogram": [[k, n] for k, n in sorted(hist.items())],
        "errors": bucket.errors,
    }


class Output:
    """JSON lines to stdout; a closed pipe means nobody is listening, so the run ends."""

    def write(self, obj: dict[str, Any]) -> None:
        try:
            sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
            sys.stdout.flush()
        except (BrokenPipeError, OSError):
            _abandon(3)


# --- the user ------------------------------------------------------------------------------------


def _bodies(profile: dict[str, Any]) -> list[str]:
    """One encoded request per input row, built once so the user loop only sends bytes."""
    out = []
    for row in profile["inputs"]:
        payload = {"inputs": [{"name": "input", "shape": [1, len(row)], "datatype": "FP32",
                               "data": [float(x) for x in row]}]}
        out.append(json.dumps(payload))
    return out


def make_user_class(profile: dict[str, Any]) -> type[FastHttpUser]:
    bodies = _bodies(profile)
    path = f"/v2/models/{profile['model']}/infer"
    timeout = float(profile["request_timeout_s"])
    offsets = itertools.count()

    pause = float(profile.get("failure_pause_s", 0.0))

    class InferUser(FastHttpUser):
        host = profile["url"].rstrip("/")
        network_timeout = timeout
        connection_timeout = timeout
        max_retries = 0
        _pause = 0.0

        def wait_time(self) -> float:
            # no think time after an answer; a short pause after a failure, so a refused endpoint
            # does not turn the users into a busy loop that takes the machine's CPU from recovery
            p, self._pause = self._pause, 0.0
            return p

        def on_start(self) -> None:
            # users start at different rows so concurrent requests carry different inputs
            start = next(offsets) % len(bodies)
            self._rows: Iterator[str] = itertools.islice(
                itertools.cycle(bodies), start, None)

        @task
        def infer(self) -> None:
            with self.client.post(path, data=next(self._rows), name="infer",
                                  headers={"Content-Type": "application/json"},
                                  catch_response=True) as resp:
                if resp.status_code != 200:
                    self._pause = pause
                    resp.failure(resp.error or f"HTTP {resp.status_code}")
                elif b'"outputs"' not in (resp.content or b""):
                    self._pause = pause
                    resp.failure("HTTP 200 without outputs")
                else:
                    resp.success()

    return InferUser


# --- recording -----------------------------------------------------------------------------------


class Recorder:
    """Buckets every completed request by the UTC second it completed in."""

    def __init__(self, env: Environment) -> None:
        self.buckets: dict[int, Bucket] = {}
        # locust's EventHook is not annotated
        env.events.request.add_listener(self._on_request)  # type: ignore[no-untyped-call]

    def _on_request(self, *, response_time: float, exception: BaseException | None = None,
                    **_: Any) -> None:
        # the event fires when the request completes, so now is its completion time
        b = self.buckets.setdefault(int(time.time()), Bucket())
        b.requests += 1
        if exception is not None:
            b.failures += 1
            reason = failure_reason(exception)
            b.errors[reason] = b.errors.get(reason, 0) + 1
        else:
            b.latencies_ms.append(float(response_time))

    def take(self, before: float) -> dict[int, Bucket]:
        """Remove and return the buckets of seconds that started before ``before``."""
        done = {s: b for s, b in self.buckets.items() if s < before}
        for s in done:
            del self.buckets[s]
        return done


# --- local / master ------------------------------------------------------------------------------


class Run:
    """One load run in this process: local runner, or master of ``workers`` worker processes."""

    def __init__(self, profile: dict[str, Any], profile_path: str, out: Output) -> None:
        self.profile = profile
        self.profile_path = profile_path
        self.out = out
        self.workers = int(profile.get("workers", 0))
        self.env = Environment(user_classes=[make_user_class(profile)])
        self.merged: dict[int, Bucket] = {}
        self.upto: dict[str, int] = {}
        self.finals: set[str] = set()
        self.late = Bucket()
        self.children: list[subprocess.Popen[bytes]] = []
        self.runner: Runner
        self.recorder: Recorder | None = None
        self.start_s = 0
        self.next_s = 0
        self.stopping = False

    def setup(self) -> None:
        if self.workers == 0:
            self.runner = self.env.create_local_runner()
            self.recorder = Recorder(self.env)
            return
        port = _free_port()
        master = self.env.create_master_runner(master_bind_host="127.0.0.1",
                                               master_bind_port=port)
        master.register_message(BUCKETS_MSG, self._on_buckets)
        self.runner = master
        # workers get an absolute deadline so they end by themselves even if this process dies
        deadline = time.time() + WORKER_CONNECT_S + 1 + float(self.profile["duration_s"]) \
            + float(self.profile["request_timeout_s"]) + EXIT_GRACE_S
        for _ in range(self.workers):
            self.children.append(subprocess.Popen(
                [sys.executable, "-m", "harness.load_worker", "--profile", self.profile_path,
                 "--master-port", str(port), "--deadline", f"{deadline:.3f}"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        t_end = time.monotonic() + WORKER_CONNECT_S
        while master.worker_count < self.workers:
            if time.monotonic() > t_end or any(c.poll() is not None for c in self.children):
                raise RuntimeError(f"only {master.worker_count} of {self.workers} locust workers "
                                   f"connected within {WORKER_CONNECT_S:.0f} s")
            gevent.sleep(0.1)

    def _on_buckets(self, environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data
        for key, raw in data["buckets"].items():
            second, bucket = int(key), Bucket.from_wire(raw)
            if second < self.next_s:
                self.late.merge(bucket)  # its second was already written without it
            else:
                self.merged.setdefault(second, Bucket()).merge(bucket)
        self.upto[msg.node_id] = max(self.upto.get(msg.node_id, 0), int(data["upto"]))
        if data.get("final"):
            self.finals.add(msg.node_id)

    def _collect(self, now: float) -> None:
        if self.recorder is not None:
            for s, b in self.recorder.take(now if math.isinf(now) else math.floor(now)).items():
                self.merged.setdefault(s, Bucket()).merge(b)

    def _ready(self, second: int, now: float) -> bool:
        if second + 1 > now:
            return False
        if self.workers == 0:
            return True
        complete = len(self.upto) >= self.workers and min(self.upto.values()) > second
        return complete or now > second + 1 + MERGE_GRACE_S

    def emit_ready(self, now: float, until: int) -> None:
        self._collect(now)
        while self.next_s < until and self._ready(self.next_s, now):
            s = self.next_s
            bucket = self.merged.pop(s, Bucket())
            if s < self.start_s:  # requests that completed before the aligned start: none expected
                self.late.merge(bucket)
            else:
                self.out.write(second_line(s, bucket, 1.0))
            self.next_s += 1

    def run(self) -> None:
        duration = float(self.profile["duration_s"])
        # start on a whole second so every written second covers a full second of load
        self.start_s = math.floor(time.time()) + 1
        self.next_s = self.start_s
        end = self.start_s + duration
        gevent.sleep(max(0.0, self.start_s - time.time()))
        self.runner.start(int(self.profile["users"]), float(self.profile["spawn_rate"]))
        self.out.write({"type": "start", "utc": datetime.fromtimestamp(self.start_s, UTC)
                        .isoformat(), "pid": os.getpid(), "workers": self.workers,
                        "users": int(self.profile["users"])})
        reason = "duration"
        while True:
            now = time.time()
            if self.stopping:
                reason = "stopped"
                break
            if now >= end:
                break
            self.emit_ready(now, math.floor(end))
            gevent.sleep(min(end, math.floor(now) + 1.02) - now)
        self.finish(min(time.time(), end), reason)

    def finish(self, stop_at: float, reason: str) -> None:
        """Stop the users, gather every bucket (workers' final ones too) and write the rest."""
        if isinstance(self.runner, MasterRunner):
            # not master.stop(): it polls its workers' user counts once a second; our flush
            # message makes each worker stop its users and send its last buckets at once
            self.runner.send_message(FLUSH_MSG, {"at": stop_at})
            t_end = time.monotonic() + MERGE_GRACE_S
            while len(self.finals) < self.workers and time.monotonic() < t_end:
                gevent.sleep(0.05)
        else:
            self.runner.stop()
        self._collect(math.inf)
        last_full = math.floor(stop_at)
        self.emit_ready(math.inf, last_full)
        tail = Bucket()
        for s in sorted(self.merged):
            if s >= last_full:
                tail.merge(self.merged.pop(s))
        span = stop_at - last_full
        if span > 0.001 and last_full >= self.start_s:
            self.out.write(second_line(last_full, tail, span))
        elif tail.requests:
            self.late.merge(tail)
        missing = sorted(set(self.upto) - self.finals) if self.workers else []
        self.out.write({"type": "end", "reason": reason, "unwritten_requests": self.late.requests,
                        "unwritten_failures": self.late.failures,
                        "unwritten_errors": self.late.errors,
                        "workers_without_final": len(missing)})

    def close(self) -> None:
        try:
            self.runner.quit()
        finally:
            for c in self.children:
                try:
                    c.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    c.kill()
                    c.wait()


# --- distributed worker --------------------------------------------------------------------------


def run_worker(profile: dict[str, Any], master_port: int) -> None:
    env = Environment(user_classes=[make_user_class(profile)])
    runner: WorkerRunner = env.create_worker_runner("127.0.0.1", master_port)
    recorder = Recorder(env)
    sent_upto = 0

    def send(before: float, final: bool) -> None:
        nonlocal sent_upto
        taken = recorder.take(before)
        upto = int(before) if math.isfinite(before) else (max(taken, default=sent_upto) + 1)
        sent_upto = max(sent_upto, upto)
        runner.send_message(BUCKETS_MSG, {"buckets": {str(s): b.to_wire()
                                                      for s, b in taken.items()},
                                          "upto": sent_upto, "final": final})

    def on_flush(environment: Environment, msg: Any, **_: Any) -> None:
        runner.stop()  # no request may complete after the final buckets are sent
        send(math.inf, True)

    runner.register_message(FLUSH_MSG, on_flush)

    def flusher() -> None:
        while True:
            now = time.time()
            gevent.sleep(math.floor(now) + 1.01 - now)
            send(math.floor(time.time()), False)

    g = gevent.spawn(flusher)
    try:
        runner.greenlet.join()
    finally:
        g.kill()


# --- process plumbing ----------------------------------------------------------------------------


def _free_port() -> int:
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _watch_stdin() -> None:
    """End of input means the harness is gone: stop at once rather than at the duration bound."""
    fd = sys.stdin.fileno()
    gevent.os.make_nonblocking(fd)
    while True:
        try:
            chunk = gevent.os.nb_read(fd, 4096)
        except OSError:
            chunk = b""
        if not chunk:
            _abandon(4)


def _abandon(code: int) -> None:
    """Nobody is listening any more: end now, with our locust workers if we lead their group."""
    if os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m harness.load_worker")
    p.add_argument("--profile", required=True, help="JSON file written by harness.load")
    p.add_argument("--master-port", type=int, help="run as a locust worker of this master")
    p.add_argument("--deadline", type=float, help="epoch seconds after which a worker exits")
    p.add_argument("--watch-stdin", action="store_true",
                   help="exit when stdin closes (the harness holds it open while it lives)")
    args = p.parse_args(argv)
    with open(args.profile, encoding="utf-8") as fh:
        profile: dict[str, Any] = json.load(fh)

    if args.master_port is not None:
        signal.alarm(max(1, math.ceil((args.deadline or time.time() + 60) - time.time())))
        run_worker(profile, args.master_port)
        return 0

    # the hard bound: SIGALRM's default action ends the process whatever state it is in
    signal.alarm(math.ceil(float(profile["duration_s"]) + float(profile["request_timeout_s"])
                           + WORKER_CONNECT_S * (1 if profile.get("workers") else 0)
                           + EXIT_GRACE_S + 2))
    out = Output()
    run = Run(profile, args.profile, out)

    def on_term() -> None:
        run.stopping = True

    gevent.signal_handler(signal.SIGTERM, on_term)
    gevent.signal_handler(signal.SIGINT, on_term)
    if args.watch_stdin:
        gevent.spawn(_watch_stdin)
    try:
        run.setup()
        run.run()
    except Exception as exc:  # reported to the harness as a line, not only a traceback in a log
        out.write({"type": "error", "message": f"{type(exc).__name__}: {exc}"})
        run.close()
        raise
    run.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
