"""The lab kubelet's container runtime: each pod of the lab cluster is a real inference process.

A pod's container names its model in its environment (``MODEL_PREFIX``, ``MODEL_NAME``,
``SERVE_AS``, ``DEVICE_MS``, as a KServe predictor's container carries its storage URI and
arguments). When the lab kubelet starts a bound pod, :class:`ProcessRuntime` runs
``python -m lab.node`` for it on a free 127.0.0.1 port: it pulls the weights from the lab's S3
store, verifies every SHA-256, loads and warms up, so a rescheduled pod pays the real price. A
prober thread asks each process's ``/v2/health/ready`` (the container's readiness probe) and the
kubelet reads the answer without blocking the store's lock; stopping a pod stops its process
group, and :meth:`ProcessRuntime.close` stops them all: no pod outlives the API server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.procs import free_port

Obj = dict[str, Any]
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RuntimeConfig:
    """Where pods pull their models from (the lab's S3 store)."""

    endpoint: str
    bucket: str
    region: str
    access_key: str
    secret_key: str
    directory: Path
    warmup: int = 10
    python: str = field(default_factory=lambda: sys.executable)


class ProcessRuntime:
    """One ``lab.node`` process per running pod."""

    def __init__(self, config: RuntimeConfig, probe_every_s: float = 0.2) -> None:
        self.config = config
        self.procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        self.readiness: dict[str, bool] = {}
        self.dying: list[subprocess.Popen[bytes]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.probe_every_s = probe_every_s
        self.prober = threading.Thread(target=self._probe_loop, daemon=True)
        self.prober.start()

    def start(self, key: str, pod: Obj) -> int | None:
        env_list = pod["spec"]["containers"][0].get("env") or []
        env = {e["name"]: str(e.get("value", "")) for e in env_list}
        if "MODEL_PREFIX" not in env:
            return None
        port = free_port()
        c = self.config
        safe = key.replace("/", "_")
        argv = [c.python, "-m", "lab.node", "--endpoint", c.endpoint, "--bucket", c.bucket,
                "--prefix", env["MODEL_PREFIX"], "--model-name", env.get("MODEL_NAME", "model"),
                "--port", str(port), "--region", c.region, "--cache-dir",
                str(c.directory / "pods" / safe / "cache"),
                "--device-ms", env.get("DEVICE_MS", "0"), "--warmup", str(c.warmup)]
        if env.get("SERVE_AS"):
            argv += ["--serve-as", env["SERVE_AS"]]
        log = c.directory / "log" / f"{safe}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                start_new_session=True,
                env=dict(os.environ, AWS_ACCESS_KEY_ID=c.access_key,
                         AWS_SECRET_ACCESS_KEY=c.secret_key))
        with self.lock:
            self.procs[key] = (proc, port)
            self.readiness[key] = False
        return port

    def ready(self, key: str) -> bool:
        with self.lock:
            return self.readiness.get(key, False)

    def stop(self, key: str) -> None:
        with self.lock:
            entry = self.procs.pop(key, None)
            self.readiness.pop(key, None)
        if entry is not None:
            # called under the store's lock: signal now, reap in the prober thread
            _signal_group(entry[0], signal.SIGTERM)
            with self.lock:
                self.dying.append(entry[0])

    def close(self) -> None:
        self.stopping.set()
        for key in list(self.procs):
            self.stop(key)
        for proc in self.dying:
            _kill_group(proc)

    def _probe_loop(self) -> None:
        while not self.stopping.wait(self.probe_every_s):
            with self.lock:
                procs = dict(self.procs)
                self.dying = [p for p in self.dying if p.poll() is None]
            for key, (proc, port) in procs.items():
                ok = proc.poll() is None and _probe(port)
                with self.lock:
                    if key in self.readiness:
                        self.readiness[key] = ok


def _probe(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready",
                                    timeout=0.5) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    _signal_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=5)
