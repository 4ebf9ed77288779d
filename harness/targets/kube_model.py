"""What the kube adapter reads from a cluster, as plain frozen records.

Nodes (GPUs, cordon, taints, conditions), pods (owner, node, readiness, GPUs), a drain's result
and a Deployment's rollout status (kubectl's rule), built from the official client's models so
the scenarios never handle the client's objects themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Taint:
    key: str
    effect: str
    value: str | None = None


@dataclass(frozen=True)
class Condition:
    type: str
    status: str
    reason: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class NodeInfo:
    name: str
    gpus: int
    unschedulable: bool
    taints: tuple[Taint, ...]
    conditions: dict[str, Condition]
    labels: dict[str, str]

    @property
    def ready(self) -> bool:
        c = self.conditions.get("Ready")
        return c is not None and c.status == "True"

    @property
    def schedulable(self) -> bool:
        """Ready, not cordoned, and no taint that keeps ordinary pods off."""
        return self.ready and not self.unschedulable and not any(
            t.effect in ("NoSchedule", "NoExecute") for t in self.taints)


@dataclass(frozen=True)
class PodInfo:
    namespace: str
    name: str
    uid: str
    node: str | None
    phase: str
    ready: bool
    deleting: bool
    owner_kind: str | None
    owner_name: str | None
    gpus: int
    labels: dict[str, str]

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass
class DrainResult:
    """What a drain did: pods evicted, pods a disruption budget kept (a finding), pods left
    alone because no drain moves them (DaemonSet pods)."""

    node: str
    evicted: list[str] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    retries: int = 0

    @property
    def complete(self) -> bool:
        return not self.blocked


@dataclass(frozen=True)
class RolloutStatus:
    done: bool
    message: str
    replicas: int
    updated: int
    available: int


def _gpus(resources: dict[str, str] | None, resource: str) -> int:
    raw = (resources or {}).get(resource, "0")
    try:
        return int(raw)
    except ValueError:
        return 0


def node_info(n: Any, gpu_resource: str) -> NodeInfo:
    spec, status = n.spec, n.status
    taints = tuple(Taint(t.key, t.effect, t.value) for t in (spec.taints or [])) if spec else ()
    conds = {c.type: Condition(c.type, c.status, c.reason, c.message)
             for c in ((status.conditions if status else None) or [])}
    return NodeInfo(n.metadata.name, _gpus(status.allocatable if status else None, gpu_resource),
                    bool(spec and spec.unschedulable), taints, conds,
                    dict(n.metadata.labels or {}))


def pod_info(p: Any, gpu_resource: str) -> PodInfo:
    meta, spec, status = p.metadata, p.spec, p.status
    owner = next((o for o in (meta.owner_references or []) if o.controller), None)
    ready = any(c.type == "Ready" and c.status == "True"
                for c in ((status.conditions if status else None) or []))
    gpus = 0
    for c in (spec.containers if spec else None) or []:
        if c.resources is not None:
            gpus += _gpus(c.resources.limits or c.resources.requests, gpu_resource)
    return PodInfo(meta.namespace, meta.name, meta.uid or "", spec.node_name if spec else None,
                   (status.phase if status else None) or "Unknown", ready,
                   meta.deletion_timestamp is not None,
                   owner.kind if owner else None, owner.name if owner else None, gpus,
                   dict(meta.labels or {}))


def rollout_of(d: Any) -> RolloutStatus:
    """kubectl's rollout-status rule for a Deployment."""
    spec_n = int(d.spec.replicas if d.spec.replicas is not None else 1)
    st = d.status
    gen, observed = d.metadata.generation or 0, (st.observed_generation if st else 0) or 0
    replicas = int((st.replicas if st else 0) or 0)
    updated = int((st.updated_replicas if st else 0) or 0)
    available = int((st.available_replicas if st else 0) or 0)
    if observed < gen:
        msg, ok = "waiting for the rollout spec update to be observed", False
    elif updated < spec_n:
        msg, ok = f"{updated} of {spec_n} updated replicas are available", False
    elif replicas > updated:
        msg, ok = f"{replicas - updated} old replicas are pending termination", False
    elif available < updated:
        msg, ok = f"{available} of {updated} updated replicas are available", False
    else:
        msg, ok = "successfully rolled out", True
    return RolloutStatus(ok, msg, replicas, updated, available)
