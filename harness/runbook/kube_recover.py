"""Putting a cluster back after a kube drill died (``drillbook recover``).

A cluster drill has no data to copy aside; its "safety copy" is what it found: the victim
nodes (cordon, taints, conditions, Ready), the replica counts of the Deployments it may scale,
and which fault it makes. :func:`record_found_state` writes that into the drill's leases before
the fault (kind ``kube-found-state``), so a drill killed with SIGKILL mid-fault leaves enough
for :func:`restore` to do what the drill's own revert would have done: start the kubelets the
variant stops, clear the drill's own condition and taint, uncordon what was schedulable,
restore the replica counts, wait for the nodes to be Ready and the rollouts complete, and fail
unless the cluster is as found.

Only the drill's own marks are removed: its taint key, and a GPU condition whose message
carries the drill's note; a condition a real GPU monitor set is left alone and reported.
"""

from __future__ import annotations

from typing import Any

from harness import lease
from harness.errors import StepFailed
from harness.runbook.kube import SIGNAL_NOTE, FaultsDone, KubeState, heal, restore_as_found
from harness.targets.kube import DRILL_TAINT_KEY, KubeCluster
from harness.targets.kube_model import Condition, NodeInfo, Taint

SAFETY_KIND = "kube-found-state"


def node_json(n: NodeInfo) -> dict[str, Any]:
    return {"name": n.name, "gpus": n.gpus, "unschedulable": n.unschedulable,
            "taints": [[t.key, t.effect, t.value] for t in n.taints],
            "conditions": {c.type: [c.status, c.reason, c.message]
                           for c in n.conditions.values()},
            "labels": dict(n.labels)}


def node_from_json(d: dict[str, Any]) -> NodeInfo:
    return NodeInfo(str(d["name"]), int(d.get("gpus", 0)), bool(d["unschedulable"]),
                    tuple(Taint(str(k), str(e), None if v is None else str(v))
                          for k, e, v in d.get("taints", [])),
                    {str(t): Condition(str(t), str(s), r, m)
                     for t, (s, r, m) in dict(d.get("conditions", {})).items()},
                    {str(k): str(v) for k, v in dict(d.get("labels", {})).items()})


def record_found_state(drill_id: str, cluster: str, namespace: str, variant: str,
                       state: KubeState) -> None:
    """Write what recover needs into the drill's leases, before the fault (a no-op outside a
    leased drill)."""
    lease.record_safety_copy(
        drill_id, SAFETY_KIND, f"kube://{cluster}/{namespace}/{drill_id}", target=cluster,
        namespace=namespace, variant=variant,
        nodes=[node_json(n) for n in state.found_nodes.values()],
        replicas=dict(state.found_replicas))


def faults_of(variant: str, nodes: list[str]) -> FaultsDone:
    """What a drill of ``variant`` may have done to ``nodes`` before it died (each undo is
    harmless when the fault never came: a kubelet started twice, a taint already gone)."""
    done = FaultsDone()
    if variant == "notready":
        done.stopped.update(nodes)
    elif variant == "noexecute":
        done.tainted.update(nodes)
    elif variant in ("drain", "gpu-fault"):
        done.cordoned.update(nodes)
        if variant == "gpu-fault":
            done.conditioned.update(nodes)
    return done


def restore(kube: KubeCluster, detail: dict[str, Any], timeout_s: float, *,
            dry_run: bool = False) -> list[str]:
    """Undo a dead drill's fault from its found state; what was done, one line each. Raises
    StepFailed naming what still differs from the found state."""
    found = {d["name"]: node_from_json(d) for d in detail.get("nodes", [])}
    replicas = {str(k): int(v) for k, v in dict(detail.get("replicas", {})).items()}
    namespace, variant = str(detail["namespace"]), str(detail["variant"])
    done = faults_of(variant, sorted(found))
    lines = _planned(kube, found, replicas, namespace, done)
    if dry_run:
        return [f"would {line}" for line in lines]
    foreign = _foreign_condition(kube, found)
    if foreign:
        done.conditioned.difference_update(foreign)
        lines.append(f"left condition {kube.target.gpu_fault_condition} on "
                     f"{', '.join(foreign)}: not the drill's (no drill note): check the GPU")
    heal(kube, done, found)
    state = KubeState(victims=sorted(found), found_nodes=found, found_replicas=replicas)
    try:
        restore_as_found(kube, state, namespace, timeout_s)  # StepFailed unless as found
    except StepFailed as exc:
        if foreign:
            raise StepFailed(f"{lines[-1]}; {exc}") from exc
        raise
    verified = (f"cluster {kube.target.name}: nodes {', '.join(sorted(found))} and "
                f"Deployments {', '.join(sorted(replicas))} verified as found")
    return [*lines, verified]


def _planned(kube: KubeCluster, found: dict[str, NodeInfo], replicas: dict[str, int],
             namespace: str, done: FaultsDone) -> list[str]:
    out = [f"start the kubelet on {n}" for n in sorted(done.stopped)]
    for name in sorted(found):
        now = kube.node(name)
        if name in done.conditioned and kube.target.gpu_fault_condition in now.conditions:
            out.append(f"clear condition {kube.target.gpu_fault_condition} on {name}")
        if name in done.tainted and any(t.key == DRILL_TAINT_KEY for t in now.taints):
            out.append(f"remove taint {DRILL_TAINT_KEY} from {name}")
        if name in done.cordoned and now.unschedulable and not found[name].unschedulable:
            out.append(f"uncordon {name}")
    for deployment, want in sorted(replicas.items()):
        have = kube.replicas("Deployment", namespace, deployment)
        if have != want:
            out.append(f"scale {namespace}/{deployment} from {have} back to {want} replicas")
    return out


def _foreign_condition(kube: KubeCluster, found: dict[str, NodeInfo]) -> list[str]:
    """Nodes whose GPU condition is set now, was not when found, and is not the drill's."""
    ctype = kube.target.gpu_fault_condition
    out = []
    for name, was in found.items():
        c = kube.node(name).conditions.get(ctype)
        if c is not None and ctype not in was.conditions and SIGNAL_NOTE not in (c.message
                                                                                  or ""):
            out.append(name)
    return out
