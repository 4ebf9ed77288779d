"""Adapters for a serving fleet: its nodes (process groups with a power-on command) and the
orchestrator's view of where replicas run.

:class:`NodeHost` acts on one node the way the power and the kernel would: kill its process group
(crash: connections refused), freeze it with SIGSTOP (hang: connections accepted, never
answered), thaw it, and run the inventory's power-on command. It only ever signals a process
group whose leader is the pid in the node's pid file. :class:`Orchestrator` reads the placement
the orchestrator publishes (the lab's controller writes it as JSON; at a real site this is the
cluster API). OS errors become :class:`~harness.errors.TargetUnreachable`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from harness.errors import GuardRefused, TargetUnreachable
from harness.inventory import InferenceTarget, NodeTarget, OrchestratorTarget
from harness.targets.inference import InferenceEndpoint


def _proc_state(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rpartition(")")[2].split()
    return fields[0] if fields else None


class NodeHost:
    def __init__(self, target: NodeTarget) -> None:
        self.target = target

    @property
    def name(self) -> str:
        return self.target.name

    def pid(self) -> int | None:
        """The node's leader pid, or None when the node is off."""
        try:
            pid = int(self.target.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        state = _proc_state(pid)
        return None if state is None or state in ("Z", "X") else pid

    def state(self) -> str:
        """``running``, ``stopped`` (frozen) or ``off``."""
        pid = self.pid()
        if pid is None:
            return "off"
        return "stopped" if _proc_state(pid) in ("T", "t") else "running"

    def _group(self) -> int:
        pid = self.pid()
        if pid is None:
            raise TargetUnreachable(f"node {self.name} is off (no live process for "
                                    f"{self.target.pidfile})")
        try:
            pgid = os.getpgid(pid)
        except OSError as exc:
            raise TargetUnreachable(f"node {self.name}: {exc}") from exc
        if pgid != pid:
            # a recycled pid, or a node that does not lead its group: never signal a stranger
            raise GuardRefused(f"node {self.name}: pid {pid} does not lead its process group "
                               f"({pgid}); refusing to signal it")
        return pgid

    def _signal(self, sig: signal.Signals) -> None:
        try:
            os.killpg(self._group(), sig)
        except OSError as exc:
            raise TargetUnreachable(f"node {self.name}: cannot send {sig.name}: {exc}") from exc

    def crash(self) -> None:
        self._signal(signal.SIGKILL)

    def freeze(self) -> None:
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def wait_off(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.pid() is None

    def power_on(self, timeout_s: float) -> None:
        """Run the node's power-on command and wait until the node's process is there."""
        if not self.target.power_on:
            raise TargetUnreachable(f"node {self.name} has no power_on command in the inventory")
        try:
            proc = subprocess.run(list(self.target.power_on), capture_output=True, text=True,
                                  timeout=timeout_s, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TargetUnreachable(f"node {self.name}: power-on command failed: {exc}") from exc
        if proc.returncode != 0:
            raise TargetUnreachable(f"node {self.name}: power-on exited {proc.returncode}: "
                                    f"{(proc.stderr or proc.stdout).strip()[:300]}")
        deadline = time.monotonic() + timeout_s
        while self.pid() is None:
            if time.monotonic() > deadline:
                raise TargetUnreachable(f"node {self.name} did not come up after power-on")
            time.sleep(0.05)


@dataclass(frozen=True)
class ReplicaView:
    name: str
    home: str
    node: str
    port: int
    pending_node: str | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class FleetView:
    nodes: dict[str, bool]  # node -> Ready
    replicas: dict[str, ReplicaView]
    updated_utc: str

    def on(self, node: str) -> list[ReplicaView]:
        return [r for r in self.replicas.values() if r.node == node]

    @property
    def settled(self) -> bool:
        """Every node Ready, every replica at home, nothing moving."""
        return all(self.nodes.values()) and all(
            r.node == r.home and r.pending_node is None for r in self.replicas.values())


class Orchestrator:
    def __init__(self, target: OrchestratorTarget) -> None:
        self.target = target

    def view(self) -> FleetView:
        try:
            doc = json.loads(self.target.state_file.read_text())
            nodes = {n: bool(v.get("ready")) for n, v in doc["nodes"].items()}
            replicas = {
                n: ReplicaView(n, str(v["home"]), str(v["node"]), int(v["port"]),
                               v.get("pending_node"))
                for n, v in doc["replicas"].items()}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TargetUnreachable(f"orchestrator {self.target.name}: cannot read "
                                    f"{self.target.state_file}: {exc}") from exc
        return FleetView(nodes, replicas, str(doc.get("updated_utc", "")))

    def endpoint(self, replica: ReplicaView, model: str) -> InferenceEndpoint:
        """The replica's own endpoint, where the orchestrator says it runs now (it moves)."""
        return InferenceEndpoint(InferenceTarget(f"replica {replica.name}", replica.url, model,
                                                 False), timeout_s=10)
