"""The lab's orchestrator: node agents and a controller that reschedules replicas.

No Kubernetes API server can run on these machines, so the lab plays the cluster's part with
processes, in the same roles:

- a **node agent** per "GPU node" (``python -m lab.controller agent``; a kubelet in miniature)
  leads its own process group, starts the replicas the controller assigns to its node as
  children (so the node's process group *is* the node: kill it and the node is lost, SIGSTOP it
  and the node hangs), stops the ones no longer assigned, and writes a heartbeat;
- the **controller** (``python -m lab.controller run``) marks a node NotReady when its agent is
  gone or its heartbeat is older than the grace period, reschedules that node's replicas onto a
  Ready node (their home node first, else the one with the fewest replicas), waits until the new
  replica has pulled its weights from S3, verified every SHA-256, loaded and warmed up, and then
  points the replica's HAProxy server slot at it (runtime API ``set server ... addr``). It never
  changes a server's admin state: taking servers out of rotation and putting them back is the
  operator's (the runbook's) job. When a replica's home node is Ready again, the controller
  moves it back home the same way, make-before-break.

Everything is in one directory (the lab's ``fleet/``): ``fleet.json`` (configuration written by
:mod:`lab.fleet`), ``nodes/<node>/`` (agent pid, heartbeat, desired and actual replicas) and
``controller-state.json`` (nodes, replicas, recent events), which the harness reads the way it
would read a cluster's API.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from lab.procs import free_port, proc_alive, read_pid

log = logging.getLogger("lab.controller")

CONFIG_NAME = "fleet.json"
STATE_NAME = "controller-state.json"
TICK_S = 0.2
MAX_EVENTS = 300
#: how long after the controller starts a node that never reported Ready is left to boot
STARTUP_GRACE_S = 15.0


@dataclass(frozen=True)
class FleetConfig:
    """What the agents and the controller need; written once by ``lab.fleet``."""

    directory: str
    python: str
    cwd: str
    endpoint: str
    region: str
    bucket: str
    prefix: str
    model: str
    credentials_file: str
    socket: str
    backend: str
    nodes: list[str]
    #: replica (= its HAProxy server name) -> home node
    replicas: dict[str, str]
    device_ms: float
    device_slots: int
    warmup: int
    grace_s: float = 1.0
    drain_s: float = 1.0

    @property
    def root(self) -> Path:
        return Path(self.directory)

    def node_dir(self, node: str) -> Path:
        return self.root / "nodes" / node

    def save(self) -> None:
        _atomic_json(self.root / CONFIG_NAME, asdict(self))

    @classmethod
    def load(cls, directory: Path) -> FleetConfig:
        return cls(**json.loads((directory / CONFIG_NAME).read_text()))

    def replica_argv(self, replica: str, port: int) -> list[str]:
        return [self.python, "-m", "lab.node", "--endpoint", self.endpoint, "--bucket",
                self.bucket, "--prefix", self.prefix, "--model-name", self.model, "--port",
                str(port), "--region", self.region, "--cache-dir",
                str(self.root / "cache" / f"{replica}-{port}"), "--device-ms",
                str(self.device_ms), "--device-slots", str(self.device_slots), "--warmup",
                str(self.warmup)]


def _atomic_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return default


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def probe_ready(port: int, timeout_s: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready",
                                    timeout=timeout_s) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# --------------------------------------------------------------------------- node agent


@dataclass
class _Child:
    proc: subprocess.Popen[bytes]
    port: int
    stop_deadline: float | None = None


def run_agent(config: FleetConfig, node: str) -> int:
    """The node agent's loop: heartbeat, then make the running replicas match the desired ones."""
    try:
        # Lead a process group of our own, so the node's replicas (our children) share it.
        os.setpgid(0, 0)
    except OSError:
        pass  # already a group leader
    ndir = config.node_dir(node)
    ndir.mkdir(parents=True, exist_ok=True)
    (ndir / "agent.pid").write_text(str(os.getpid()))
    creds = _read_json(Path(config.credentials_file), {})
    env = dict(os.environ, AWS_ACCESS_KEY_ID=str(creds.get("access_key", "")),
               AWS_SECRET_ACCESS_KEY=str(creds.get("secret_key", "")))
    children: dict[str, _Child] = {}
    stopping: list[_Child] = []
    stop = False

    def on_term(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    log.info("node %s agent up (pid %d)", node, os.getpid())
    while not stop:
        _atomic_text(ndir / "heartbeat", f"{time.time():.3f}")
        desired: dict[str, int] = _read_json(ndir / "desired.json", {})
        for name, child in list(children.items()):
            if child.proc.poll() is not None:
                log.info("node %s: replica %s (port %d) exited with %s", node, name, child.port,
                         child.proc.returncode)
                del children[name]
                shutil.rmtree(config.root / "cache" / f"{name}-{child.port}", ignore_errors=True)
            elif desired.get(name) != child.port:
                log.info("node %s: stopping replica %s (port %d)", node, name, child.port)
                child.proc.terminate()
                child.stop_deadline = time.monotonic() + 5
                stopping.append(children.pop(name))
        for name, port in desired.items():
            if name not in children:
                log.info("node %s: starting replica %s on port %d", node, name, port)
                with (ndir / f"{name}.log").open("ab") as out:
                    proc = subprocess.Popen(config.replica_argv(name, port), cwd=config.cwd,
                                            env=env, stdout=out, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
                children[name] = _Child(proc, port)
        stopping = _reap(stopping, config)
        _atomic_json(ndir / "status.json", {
            name: {"pid": c.proc.pid, "port": c.port} for name, c in children.items()})
        time.sleep(TICK_S)
    for child in children.values():
        child.proc.terminate()
        child.stop_deadline = time.monotonic() + 5
    stopping.extend(children.values())
    while stopping:
        stopping = _reap(stopping, config)
        time.sleep(0.05)
    log.info("node %s agent stopped", node)
    return 0


def _reap(stopping: list[_Child], config: FleetConfig) -> list[_Child]:
    left = []
    for child in stopping:
        if child.proc.poll() is not None:
            continue
        if child.stop_deadline is not None and time.monotonic() > child.stop_deadline:
            child.proc.kill()
        left.append(child)
    return left


# --------------------------------------------------------------------------- controller


@dataclass
class NodeState:
    ready: bool = False
    pid: int | None = None
    since_utc: str = ""
    #: seen Ready by this controller: a node still booting is not a lost node
    seen_ready: bool = False


@dataclass
class ReplicaState:
    home: str
    node: str
    port: int
    pending_node: str | None = None
    pending_port: int | None = None
    scheduled_utc: str = ""
    ready_utc: str = ""
    #: (node, port, until epoch) of copies kept running briefly after a move, so requests
    #: HAProxy already sent there can finish
    retired: list[tuple[str, int, float]] = field(default_factory=list)


class Controller:
    """Reconciles replicas onto Ready nodes; one :meth:`tick` per :data:`TICK_S`."""

    def __init__(self, config: FleetConfig) -> None:
        from harness.targets.loadbalancer import LoadBalancer

        self.config = config
        self.lb = LoadBalancer(config.socket, config.backend, timeout_s=2.0)
        doc = _read_json(config.root / STATE_NAME, {})
        self.nodes = {n: NodeState() for n in config.nodes}
        self.replicas: dict[str, ReplicaState] = {}
        for name, home in config.replicas.items():
            raw = doc.get("replicas", {}).get(name)
            if raw:
                raw["retired"] = [tuple(x) for x in raw.get("retired", [])]
                self.replicas[name] = ReplicaState(**raw)
            else:
                self.replicas[name] = ReplicaState(home, home, free_port())
        self.events: list[dict[str, Any]] = list(doc.get("events", []))[-MAX_EVENTS:]
        self._last_desired: dict[str, dict[str, int]] = {}
        self.started = time.monotonic()

    def event(self, name: str, **detail: Any) -> None:
        entry = {"utc": utc_now(), "event": name, **detail}
        self.events.append(entry)
        del self.events[:-MAX_EVENTS]
        log.info("%s %s", name, " ".join(f"{k}={v}" for k, v in detail.items()))

    def observe_nodes(self) -> None:
        now = time.time()
        for name, st in self.nodes.items():
            ndir = self.config.node_dir(name)
            pid = read_pid(ndir / "agent.pid")
            alive = proc_alive(pid, b"lab.controller")
            try:
                beat = float((ndir / "heartbeat").read_text())
            except (OSError, ValueError):
                beat = 0.0
            ready = alive and now - beat < self.config.grace_s
            if ready != st.ready or not st.since_utc:
                reason = "" if ready else ("agent gone" if not alive else
                                           f"no heartbeat for {now - beat:.1f} s")
                if st.since_utc or not ready:
                    self.event("node.ready" if ready else "node.notready", node=name,
                               reason=reason)
                st.ready, st.since_utc = ready, utc_now()
            st.seen_ready |= ready
            st.pid = pid if alive else None

    def _choose(self, replica: ReplicaState) -> str | None:
        if self.nodes[replica.home].ready:
            return replica.home
        load = {n: 0 for n, st in self.nodes.items() if st.ready}
        for r in self.replicas.values():
            for n in (r.node, r.pending_node):
                if n in load:
                    load[n] += 1
        return min(load, key=lambda n: (load[n], n)) if load else None

    def _schedule(self, name: str, r: ReplicaState, node: str, why: str) -> None:
        r.pending_node, r.pending_port = node, free_port()
        r.scheduled_utc = utc_now()
        self.event("replica.scheduled", replica=name, node=node, port=r.pending_port,
                   reason=why)

    def reconcile(self) -> None:
        now = time.time()
        moving = any(r.pending_node for r in self.replicas.values())
        for name, r in self.replicas.items():
            r.retired = [x for x in r.retired if x[2] > now]
            if r.pending_node is not None and r.pending_port is not None:
                if not self.nodes[r.pending_node].ready:
                    self.event("replica.unscheduled", replica=name, node=r.pending_node,
                               reason="target node NotReady")
                    r.pending_node = r.pending_port = None
                elif probe_ready(r.pending_port):
                    # the replica pulled, verified, loaded and warmed up: send traffic there
                    self.lb.set_address(name, "127.0.0.1", r.pending_port)
                    r.retired.append((r.node, r.port, now + self.config.drain_s))
                    self.event("replica.ready", replica=name, node=r.pending_node,
                               port=r.pending_port, previous_node=r.node)
                    r.node, r.port = r.pending_node, r.pending_port
                    r.pending_node = r.pending_port = None
                    r.ready_utc = utc_now()
                continue
            node = self.nodes[r.node]
            booting = not node.seen_ready and time.monotonic() - self.started < STARTUP_GRACE_S
            if not node.ready and not booting:
                target = self._choose(r)
                if target is not None and target != r.node:
                    self._schedule(name, r, target, f"node {r.node} NotReady")
            elif r.node != r.home and self.nodes[r.home].ready and not moving:
                self._schedule(name, r, r.home, "home node Ready again")
                moving = True

    def desired(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {n: {} for n in self.nodes}
        for name, r in self.replicas.items():
            out[r.node][name] = r.port
            for node, port, _ in r.retired:
                # a retired copy keeps running only if nothing newer for it is on that node
                out[node].setdefault(name, port)
            if r.pending_node is not None and r.pending_port is not None:
                out[r.pending_node][name] = r.pending_port
        return out

    def write(self) -> None:
        desired = self.desired()
        for node, want in desired.items():
            if self._last_desired.get(node) != want:
                _atomic_json(self.config.node_dir(node) / "desired.json", want)
        self._last_desired = desired
        _atomic_json(self.config.root / STATE_NAME, {
            "updated_utc": utc_now(),
            "controller_pid": os.getpid(),
            "nodes": {n: asdict(st) for n, st in self.nodes.items()},
            "replicas": {n: asdict(r) for n, r in self.replicas.items()},
            "events": self.events,
        })

    def tick(self) -> None:
        self.observe_nodes()
        self.reconcile()
        self.write()


def run_controller(config: FleetConfig) -> int:
    ctl = Controller(config)
    stop = False

    def on_term(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    (config.root / "controller.pid").write_text(str(os.getpid()))
    log.info("controller up (pid %d): nodes %s", os.getpid(), ", ".join(config.nodes))
    while not stop:
        try:
            ctl.tick()
        # The orchestrator must outlive one bad tick (HAProxy restarting, a torn file).
        except Exception:
            log.exception("tick failed")
        time.sleep(TICK_S)
    log.info("controller stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.controller",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("role", choices=("agent", "run"))
    parser.add_argument("--dir", type=Path, required=True, help="the fleet directory")
    parser.add_argument("--node", help="node name (agent only)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s lab.controller %(message)s")
    config = FleetConfig.load(args.dir)
    if args.role == "agent":
        if args.node not in config.nodes:
            parser.error(f"--node must be one of {config.nodes}")
        return run_agent(config, args.node)
    return run_controller(config)


if __name__ == "__main__":
    sys.exit(main())
