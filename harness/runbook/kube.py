"""Runbook steps for a workload on a Kubernetes cluster, and the node faults the kube drills make.

The kube scenarios compose these instead of inheriting from each other:

- :class:`PodWatcher` watches the workload's pods from before the fault and records, per pod,
  when it was lost, when its replacement was bound to a node and when it turned Ready: the
  per-pod ``rescheduled_s`` and ``ready_s`` in the evidence come from watch events, never polls.
- :class:`NodeFaults` makes one node fault of a variant (``drain``, ``noexecute``, ``notready``,
  ``gpu-fault``) and remembers exactly what it did, so :meth:`NodeFaults.heal` undoes that and
  nothing else.
- :func:`check_guards` is the preflight every kube drill shares: drill-safe namespaces only, the
  blast-radius limit, and enough GPUs left for the pods that will move (unless losing them all
  is the point).
- :class:`KubeState` is the typed per-drill state; :func:`revert_cluster` puts the cluster back
  and says what is not as found.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.context import DrillContext
from harness.errors import GuardRefused, Inconclusive, StepFailed
from harness.inventory_kube import KubeWorkload
from harness.model import Scalar
from harness.targets.kube import DRILL_TAINT_KEY, KubeCluster
from harness.targets.kube_model import Condition, NodeInfo, Taint, pod_info

#: the platform the kube scenarios implement their names for (harness/scenario.py resolve)
PLATFORM = "kubernetes"
NODE_VARIANTS = ("drain", "noexecute", "notready", "gpu-fault")
#: the message a gpu-fault drill writes into the condition: the evidence must not be mistaken
#: for a broken GPU, and neither must the cluster's own view of the node
SIGNAL_NOTE = "drillbook drill: simulated GPU health signal, the GPU is not broken"


@dataclass
class KubeState:
    """What a kube drill found and did (filled by preflight, baseline, inject and steps)."""

    victims: list[str] = field(default_factory=list)
    found_nodes: dict[str, NodeInfo] = field(default_factory=dict)
    found_replicas: dict[str, int] = field(default_factory=dict)
    selector: str = ""
    watcher: PodWatcher | None = None
    t0: float | None = None


class PodWatcher:
    """Watches the workload's pods from before the fault; records per pod when it was lost
    (deleted or terminating on a victim node), bound to a node, and Ready (``clock`` seconds)."""

    def __init__(self, kube: KubeCluster, namespace: str, selector: str, lost_from: set[str],
                 want: int, timeout_s: float, clock: Callable[[], float], *,
                 avoid: set[str] | None = None) -> None:
        """``lost_from``: the nodes the fault hits; ``avoid``: nodes replacements must not
        be on to count as recovered (default: ``lost_from``; a site loss brings the same
        nodes back)."""
        self.kube, self.namespace, self.selector = kube, namespace, selector
        self.lost_from = lost_from
        self.avoid = lost_from if avoid is None else avoid
        self.want, self.timeout_s, self.clock = want, timeout_s, clock
        self.lost: dict[str, float] = {}
        self.bound: dict[str, tuple[str, float]] = {}
        self.ready: dict[str, float] = {}
        self.gone: dict[str, float] = {}
        self.before: set[str] = set()
        self.done = False
        self.error: BaseException | None = None
        self.started = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _event(self, kind: str, obj: Any) -> None:
        p = pod_info(obj, self.kube.target.gpu_resource)
        t = self.clock()
        if p.node in self.lost_from and p.key in self.before and (kind == "DELETED"
                                                                  or p.deleting):
            self.lost.setdefault(p.key, t)
        if p.key not in self.before and p.node and p.key not in self.bound:
            self.bound[p.key] = (p.node, t)
        if p.key not in self.before and p.ready:
            self.ready.setdefault(p.key, t)
        if p.key not in self.before and (kind == "DELETED" or p.deleting):
            # a replacement lost in turn (bound to a node the fault reached a moment later)
            self.gone.setdefault(p.key, t)

    def _recovered(self, cache: dict[str, Any]) -> bool:
        if not self.started.is_set():
            self.before = set(cache)
            self.started.set()
        if self.stop.is_set():
            return True
        pods = [pod_info(o, self.kube.target.gpu_resource) for o in cache.values()]
        live = [p for p in pods if not p.deleting]
        return bool(self.lost) and len(live) >= self.want and all(
            p.ready and p.node not in self.avoid for p in live)

    def _run(self) -> None:
        try:
            self.done = self.kube.watch_until(
                "workload pods", self.kube.core.list_namespaced_pod, self._recovered,
                self.timeout_s, on_event=self._event, namespace=self.namespace,
                label_selector=self.selector) and not self.stop.is_set()
        except BaseException as exc:  # noqa: BLE001 - handed to the step that joins
            self.error = exc
            self.started.set()

    def begin(self) -> None:
        self.thread.start()
        if not self.started.wait(30) or self.error is not None:
            raise Inconclusive(f"could not watch the workload's pods: {self.error}")

    def per_pod(self, t0: float) -> list[dict[str, Scalar]]:
        """One entry per replacement pod, in the order they were bound."""
        out: list[dict[str, Scalar]] = []
        for key, (node, bound) in sorted(self.bound.items(), key=lambda kv: kv[1][1]):
            ready = self.ready.get(key)
            entry: dict[str, Scalar] = {
                "pod": key, "node": node, "rescheduled_s": round(bound - t0, 3),
                "ready_s": None if ready is None else round(ready - t0, 3)}
            if key in self.gone:
                entry["deleted_s"] = round(self.gone[key] - t0, 3)
            out.append(entry)
        return out


def deployment_selector(kube: KubeCluster, namespace: str, deployment: str) -> str:
    d = kube._call(f"read deployment {namespace}/{deployment}", lambda: (
        kube.apps.read_namespaced_deployment(deployment, namespace,
                                             _request_timeout=kube.timeout)))
    labels = d.spec.selector.match_labels or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def check_guards(ctx: DrillContext, kube: KubeCluster, work: KubeWorkload, victims: list[str],
                 *, need_capacity: bool) -> None:
    """Refuse (GuardRefused: nothing changed) unless the drill stays inside what the inventory
    allows: the workload's namespace is drill-safe, at most ``max_nodes`` nodes, every pod on
    them (DaemonSet pods aside) in a drill-safe namespace, and (``need_capacity``) the other
    schedulable GPU nodes have free GPUs for every pod that will move."""
    t = kube.target
    if work.namespace not in t.namespaces:
        raise GuardRefused(f"namespace {work.namespace} is not drill-safe in {t.name}")
    if len(victims) > t.max_nodes:
        raise GuardRefused(f"the drill would take out {len(victims)} node(s); target {t.name} "
                           f"allows at most {t.max_nodes} (max_nodes)")
    all_pods = [p for p in kube.pods() if not p.deleting]
    on_victims = [p for p in all_pods if p.node in victims]
    foreign = [p.key for p in on_victims if p.namespace not in t.namespaces
               and p.owner_kind != "DaemonSet"]
    if foreign:
        raise GuardRefused(f"node(s) {', '.join(victims)} run pods outside the drill-safe "
                           f"namespaces: {', '.join(foreign)}")
    if not need_capacity:
        return
    need = sum(p.gpus for p in on_victims if p.owner_kind != "DaemonSet")
    free = 0
    for n in kube.gpu_nodes():
        if n.name not in victims and n.schedulable:
            used = sum(p.gpus for p in all_pods if p.node == n.name)
            free += max(0, n.gpus - used)
    ctx.event("capacity.checked", gpus_needed=need, gpus_free=free, nodes=",".join(victims))
    if free < need:
        raise GuardRefused(f"the other GPU nodes have {free} free GPU(s) for the {need} the "
                           f"pods on {', '.join(victims)} use: losing them would be a real "
                           f"outage")


def check_rolled_out(kube: KubeCluster, work: KubeWorkload) -> None:
    st = kube.rollout_status(work.namespace, work.deployment)
    if not st.done:
        raise Inconclusive(f"{work.deployment} is not rolled out before the fault: {st.message}")
    if work.inference_service:
        ok, why = kube.inference_service_ready(work.namespace, work.inference_service)
        if not ok:
            raise Inconclusive(f"InferenceService not Ready before the fault: {why}")


@dataclass
class FaultsDone:
    """Which nodes a drill stopped, tainted, cordoned or marked: what :func:`heal` undoes."""

    tainted: set[str] = field(default_factory=set)
    cordoned: set[str] = field(default_factory=set)
    stopped: set[str] = field(default_factory=set)
    conditioned: set[str] = field(default_factory=set)


class NodeFaults:
    """Makes node faults of one variant and remembers what it did, for :meth:`heal`."""

    def __init__(self, ctx: DrillContext, kube: KubeCluster, variant: str) -> None:
        if variant not in NODE_VARIANTS:
            raise Inconclusive(f"unknown node fault {variant!r}")
        self.ctx, self.kube, self.variant = ctx, kube, variant
        self.done = FaultsDone()
        self.tainted, self.cordoned = self.done.tainted, self.done.cordoned
        self.stopped, self.conditioned = self.done.stopped, self.done.conditioned
        self.blocked: dict[str, str] = {}

    def inject(self, node: str) -> None:
        k, v = self.kube, self.variant
        if v == "drain":
            self.cordoned.add(node)
            result = k.drain(node, namespaces=k.target.namespaces,
                             deadline_s=min(60.0, self.ctx.inventory.step_timeout_s))
            self.ctx.event("drain.done", node=node, evicted=len(result.evicted),
                           blocked=len(result.blocked), retries=result.retries)
            self.blocked.update(result.blocked)
        elif v == "noexecute":
            self.tainted.add(node)
            k.add_taint(node, Taint(DRILL_TAINT_KEY, "NoExecute", "drill"))
        elif v == "notready":
            self.stopped.add(node)
            k.kubelet(node, running=False)
        else:
            self.conditioned.add(node)
            k.set_node_condition(node, Condition(
                k.target.gpu_fault_condition, "True", "XidCriticalError",
                f"Xid 79 (GPU has fallen off the bus) reported; {SIGNAL_NOTE}"))

    def cordon_and_evict(self, node: str) -> None:
        """The remediation a GPU fault calls for: cordon, then evict through the Eviction API
        (disruption budgets honoured)."""
        self.cordoned.add(node)
        result = self.kube.drain(node, namespaces=self.kube.target.namespaces,
                                 deadline_s=min(60.0, self.ctx.inventory.step_timeout_s))
        self.ctx.event("drain.done", node=node, evicted=len(result.evicted),
                       blocked=len(result.blocked), retries=result.retries)
        self.blocked.update(result.blocked)
        if result.blocked:
            raise StepFailed(f"eviction from {node} blocked: "
                             + "; ".join(f"{p}: {why}" for p, why in result.blocked.items()))

    def heal(self, found: dict[str, NodeInfo]) -> None:
        """Undo what this drill did, node by node, and nothing else."""
        heal(self.kube, self.done, found)


def heal(kube: KubeCluster, done: FaultsDone, found: dict[str, NodeInfo]) -> None:
    """Undo ``done``: kubelets started, the drill's condition and taint removed, nodes that were
    schedulable when found uncordoned. Each undone fault leaves ``done``."""
    k = kube
    for node in sorted(done.stopped):
        k.kubelet(node, running=True)
        done.stopped.discard(node)
    for node in sorted(done.conditioned):
        k.clear_node_condition(node, k.target.gpu_fault_condition)
        done.conditioned.discard(node)
    for node in sorted(done.tainted):
        k.remove_taint(node, DRILL_TAINT_KEY)
        done.tainted.discard(node)
    for node in sorted(done.cordoned):
        if not found[node].unschedulable and k.node(node).unschedulable:
            k.uncordon(node)
        done.cordoned.discard(node)


def revert_cluster(ctx: DrillContext, kube: KubeCluster, faults: NodeFaults, state: KubeState,
                   namespace: str) -> None:
    """The drill's revert: stop the pod watch, heal the nodes, then :func:`restore_as_found`."""
    if state.watcher is not None:
        state.watcher.stop.set()
    faults.heal(state.found_nodes)
    restore_as_found(kube, state, namespace, ctx.inventory.step_timeout_s)


def restore_as_found(kube: KubeCluster, state: KubeState, namespace: str,
                     timeout: float) -> None:
    """Restore every replica count, wait for the nodes to be Ready and the rollouts complete,
    then fail unless every node and Deployment is as found."""
    for deployment, replicas in state.found_replicas.items():
        if kube.replicas("Deployment", namespace, deployment) != replicas:
            kube.scale("Deployment", namespace, deployment, replicas)
    diffs = []
    for name, found in state.found_nodes.items():
        if found.ready and not kube.wait_node(name, lambda n: n.ready and not any(
                t.key.startswith("node.kubernetes.io/") for t in n.taints), timeout):
            diffs.append(f"node {name} not Ready again")
        now = kube.node(name)
        if now.unschedulable != found.unschedulable:
            diffs.append(f"node {name} unschedulable={now.unschedulable}")
        if set(now.taints) != set(found.taints):
            diffs.append(f"node {name} taints {sorted(t.key for t in now.taints)}")
        if set(now.conditions) != set(found.conditions):
            diffs.append(f"node {name} conditions {sorted(now.conditions)}")
    for deployment, replicas in state.found_replicas.items():
        st = kube.wait_rollout(namespace, deployment, timeout)
        if kube.replicas("Deployment", namespace, deployment) != replicas:
            diffs.append(f"{deployment} replica count")
        if not st.done:
            diffs.append(f"{deployment} rollout: {st.message}")
    if diffs:
        raise StepFailed(f"cluster not as found after revert: {'; '.join(diffs)}")


def wait_rescheduled(ctx: DrillContext, state: KubeState) -> None:
    """Join the pod watch: every lost pod replaced, bound to a healthy node and Ready. Records
    the per-pod times as ``pod.rescheduled`` events and in ``sections.kube``."""
    w = state.watcher
    assert w is not None and state.t0 is not None
    w.thread.join(ctx.inventory.step_timeout_s)
    if w.error is not None:
        raise Inconclusive(f"the pod watch failed: {w.error}")
    pods = w.per_pod(state.t0)
    for entry in pods:
        ctx.event("pod.rescheduled", **entry)
    section = ctx.findings.sections.setdefault("kube", {})
    section.update({"nodes": list(state.victims), "variant": ctx.variant,
                    "lost": sorted(w.lost), "pods": pods,
                    "lost_s": {k: round(t - state.t0, 3) for k, t in sorted(w.lost.items())}})
    if not w.done:
        raise StepFailed(f"{len(w.lost)} pod(s) lost; replacements not all Ready on another "
                         f"node within {ctx.inventory.step_timeout_s:g} s")


def rollout_complete(ctx: DrillContext, kube: KubeCluster, work: KubeWorkload) -> None:
    st = kube.wait_rollout(work.namespace, work.deployment, ctx.inventory.step_timeout_s)
    if not st.done:
        raise StepFailed(f"rollout of {work.deployment}: {st.message}")


def service_ready(ctx: DrillContext, kube: KubeCluster, work: KubeWorkload) -> None:
    if work.inference_service is None:
        return
    ok, why = kube.inference_service_ready(work.namespace, work.inference_service)
    if not ok:
        raise StepFailed(f"InferenceService {work.inference_service} not Ready: {why}")
    ctx.event("service.ready", inference_service=work.inference_service)


def verify_placement(ctx: DrillContext, kube: KubeCluster, work: KubeWorkload,
                     state: KubeState) -> None:
    """Independent of the watch: every replica Ready, none on a lost node."""
    want = state.found_replicas.get(work.deployment, 0)
    live = [p for p in kube.pods(work.namespace, selector=state.selector) if not p.deleting]
    ready = sum(1 for p in live if p.ready)
    stuck = sorted(p.key for p in live if p.node in state.victims)
    if stuck:
        ctx.fail(f"pod(s) of {work.deployment} still on a lost node: {', '.join(stuck)}")
    if ready < want:
        ctx.fail(f"{ready} of {want} replicas of {work.deployment} Ready after recovery")
    ctx.findings.smoke.update({
        "ready_replicas": ready, "passed": ready >= want and not stuck,
        "summary": f"{ready} of {want} replicas Ready off {', '.join(state.victims)}"})
