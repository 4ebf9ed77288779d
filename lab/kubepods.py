"""What the lab cluster knows of one pod and one node, apart from the store: how a bound pod is
run (a delay, or a real process: :class:`PodRuntime`), how many GPUs it asks for, which taints
it tolerates and for how long, and whether a node is Ready. The controllers in lab/kubestore.py
apply these rules."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

Obj = dict[str, Any]
GPU = "nvidia.com/gpu"


class PodRuntime(Protocol):
    """What the lab's kubelet runs a bound pod with: nothing (a delay) or a real process."""

    def start(self, key: str, pod: Obj) -> int | None:
        """Start the pod's container; the port it serves on (None: it serves nothing)."""
        ...

    def ready(self, key: str) -> bool:
        """The readiness probe's answer now."""
        ...

    def stop(self, key: str) -> None: ...


class DelayRuntime:
    """No container: a pod turns Ready a fixed delay after it starts."""

    def __init__(self, delay_s: float, clock: Callable[[], float]) -> None:
        self.delay_s, self.clock = delay_s, clock
        self.started: dict[str, float] = {}

    def start(self, key: str, pod: Obj) -> int | None:
        self.started[key] = self.clock()
        return None

    def ready(self, key: str) -> bool:
        return key in self.started and self.clock() - self.started[key] >= self.delay_s

    def stop(self, key: str) -> None:
        self.started.pop(key, None)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def gpus(pod: Obj) -> int:
    n = 0
    for c in pod["spec"].get("containers", []):
        limits = (c.get("resources") or {}).get("limits") or {}
        n += int(limits.get(GPU, "0"))
    return n


def tolerates(pod: Obj, taint: Obj) -> bool:
    for t in pod["spec"].get("tolerations") or []:
        if t.get("effect") not in (None, taint["effect"]):
            continue
        if t.get("operator") == "Exists" and t.get("key") in (None, taint["key"]):
            return True
        if t.get("key") == taint["key"] and t.get("value") == taint.get("value"):
            return True
    return False


def node_ready(node: Obj) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in node["status"].get("conditions", []))



def has_taint(node: Obj, key: str) -> bool:
    return any(x["key"] == key for x in node["spec"].get("taints") or [])


def tolerated_for(pod: Obj, taint: Obj) -> float | None:
    """How long the pod tolerates a NoExecute taint: None not at all, inf for ever."""
    best: float | None = None
    for t in pod["spec"].get("tolerations") or []:
        if t.get("effect") not in (None, taint["effect"]):
            continue
        if not ((t.get("operator") == "Exists" and t.get("key") in (None, taint["key"]))
                or (t.get("key") == taint["key"] and t.get("value") == taint.get("value"))):
            continue
        secs = t.get("tolerationSeconds")
        span = float("inf") if secs is None else float(secs)
        best = span if best is None else max(best, span)
    return best
