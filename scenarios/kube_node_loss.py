"""Scenario ``kube-gpu-node-loss``: one GPU node of a Kubernetes cluster is lost.

Variants:
  drain      the node is cordoned and its pods evicted through the Eviction API (disruption
             budgets honoured: a drain they block is a finding, the drill FAILs).
  noexecute  a NoExecute taint is put on the node: its pods are evicted as from a failed node.

The node is the one running the first pod of the asset's Deployment, on a GPU node. Guards
(preflight, before anything changes): the cluster target and the asset's namespace are
drill-safe, one node is within the target's ``max_nodes``, every pod on the node is in a
drill-safe namespace (DaemonSet pods aside), and the other schedulable GPU nodes have free GPUs
for every evicted pod (otherwise the drill would cause a real outage).

Recovery is the control plane's: a watch started before the fault records, per lost pod, when
its replacement was bound to a node (``rescheduled_s``) and when it became Ready
(``ready_s``), seconds from the fault; the runbook waits for that, the Deployment's rollout and
the InferenceService's readiness. Revert removes the drill's taint, uncordons the node if the
drill cordoned it, restores the replica count and checks the cluster is as found.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from harness.blast import Touch, TouchKind
from harness.errors import GuardRefused, Inconclusive, StepFailed
from harness.inventory_kube import ASSET_KIND, KubeWorkload
from harness.model import RestorePoint, Scalar
from harness.scenario import RunbookStep, Scenario
from harness.targets.kube import DRILL_TAINT_KEY, KubeCluster, NodeInfo, Taint, pod_info


class PodWatcher:
    """Watches the workload's pods from before the fault and records, per pod, when it was
    deleted, bound to a node and Ready (monotonic seconds)."""

    def __init__(self, kube: KubeCluster, work: KubeWorkload, selector: str, victim: str,
                 timeout_s: float) -> None:
        self.kube, self.work, self.selector, self.victim = kube, work, selector, victim
        self.timeout_s = timeout_s
        self.lost: dict[str, float] = {}
        self.bound: dict[str, tuple[str, float]] = {}
        self.ready: dict[str, float] = {}
        self.before: set[str] = set()
        self.want = 0
        self.done = False
        self.error: BaseException | None = None
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _event(self, kind: str, obj: Any) -> None:
        p = pod_info(obj, self.kube.target.gpu_resource)
        t = time.monotonic()
        if p.node == self.victim and p.key in self.before and (kind == "DELETED" or p.deleting):
            self.lost.setdefault(p.key, t)
        if p.key not in self.before and p.node and p.key not in self.bound:
            self.bound[p.key] = (p.node, t)
        if p.key not in self.before and p.ready:
            self.ready.setdefault(p.key, t)

    def _recovered(self, cache: dict[str, Any]) -> bool:
        if not self.before:
            self.before = set(cache)
            self.started.set()
        pods = [pod_info(o, self.kube.target.gpu_resource) for o in cache.values()]
        live = [p for p in pods if not p.deleting]
        return bool(self.lost) and len(live) >= self.want and all(
            p.ready and p.node != self.victim for p in live)

    def _run(self) -> None:
        try:
            self.done = self.kube.watch_until(
                "workload pods", self.kube.core.list_namespaced_pod, self._recovered,
                self.timeout_s, on_event=self._event, namespace=self.work.namespace,
                label_selector=self.selector)
        except BaseException as exc:  # noqa: BLE001 - handed to the runbook step that joins
            self.error = exc
            self.started.set()


class KubeGpuNodeLoss(Scenario):
    name: ClassVar[str] = "kube-gpu-node-loss"
    summary: ClassVar[str] = "lose one GPU node of a Kubernetes cluster (drain or NoExecute)"
    variants: ClassVar[tuple[str, ...]] = ("drain", "noexecute")
    asset_kinds: ClassVar[tuple[str, ...]] = (ASSET_KIND,)
    destructive: ClassVar[bool] = True
    blast_radius: ClassVar[str] = "one GPU node of one cluster; the workload's replicas"

    victim: str | None = None
    found_node: NodeInfo
    found_replicas: int
    watcher: PodWatcher
    t0: float

    @property
    def kube(self) -> KubeCluster:
        return self.ctx.adapters.kube(self.ctx.asset.store)

    @property
    def work(self) -> KubeWorkload:
        assert self.ctx.asset.workload is not None
        return self.ctx.asset.workload

    def _selector(self) -> str:
        d = self.kube._call("read deployment", lambda: self.kube.apps.read_namespaced_deployment(
            self.work.deployment, self.work.namespace, _request_timeout=self.kube.timeout))
        labels = d.spec.selector.match_labels or {}
        return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))

    def _pick_victim(self) -> str:
        gpu = {n.name for n in self.kube.gpu_nodes()}
        pods = sorted((p for p in self.kube.pods(self.work.namespace, selector=self._selector())
                       if p.node in gpu and not p.deleting), key=lambda p: p.name)
        if not pods:
            raise Inconclusive(f"no pod of {self.work.deployment} runs on a GPU node")
        assert pods[0].node is not None
        return pods[0].node

    def touches(self) -> list[Touch]:
        if self.victim is None:
            self.victim = self._pick_victim()
        cluster = self.ctx.asset.store
        return [Touch(cluster, TouchKind.NODE, self.victim),
                Touch(cluster, TouchKind.SERVICE, f"{self.work.namespace}/{self.work.deployment}")]

    def preflight(self) -> None:
        t = self.kube.target
        if self.work.namespace not in t.namespaces:
            raise GuardRefused(f"namespace {self.work.namespace} is not drill-safe in {t.name}")
        if t.max_nodes < 1:
            raise GuardRefused(f"target {t.name} allows no node per drill (max_nodes)")
        assert self.victim is not None
        node = self.kube.node(self.victim)
        on_node = [p for p in self.kube.pods(node=self.victim) if not p.deleting]
        foreign = [p.key for p in on_node if p.namespace not in t.namespaces
                   and p.owner_kind != "DaemonSet"]
        if foreign:
            raise GuardRefused(f"node {self.victim} runs pods outside the drill-safe namespaces: "
                               f"{', '.join(foreign)}")
        need = sum(p.gpus for p in on_node if p.owner_kind != "DaemonSet")
        all_pods = self.kube.pods()
        free = 0
        for n in self.kube.gpu_nodes():
            if n.name != self.victim and n.schedulable:
                used = sum(p.gpus for p in all_pods if p.node == n.name and not p.deleting)
                free += max(0, n.gpus - used)
        self.ctx.event("capacity.checked", gpus_needed=need, gpus_free=free, node=self.victim)
        if free < need:
            raise GuardRefused(f"the other GPU nodes have {free} free GPU(s) for the {need} the "
                               f"pods on {self.victim} use: losing it would be a real outage")
        st = self.kube.rollout_status(self.work.namespace, self.work.deployment)
        if not st.done:
            raise Inconclusive(f"{self.work.deployment} is not rolled out before the fault: "
                               f"{st.message}")
        if self.work.inference_service:
            ok, why = self.kube.inference_service_ready(self.work.namespace,
                                                        self.work.inference_service)
            if not ok:
                raise Inconclusive(f"InferenceService not Ready before the fault: {why}")
        self.found_node = node

    def baseline(self) -> None:
        w = self.work
        self.found_replicas = self.kube.replicas("Deployment", w.namespace, w.deployment)
        self.ctx.event("baseline.kube", node=self.found_node.name, replicas=self.found_replicas,
                       unschedulable=self.found_node.unschedulable,
                       taints=len(self.found_node.taints))
        self.ctx.findings.restore_point = RestorePoint(
            "kube-deployment", f"{w.namespace}/{w.deployment} replicas={self.found_replicas}",
            datetime.now(UTC), f"{self.ctx.asset.store}:{w.namespace}/{w.deployment}")

    def inject(self) -> None:
        assert self.victim is not None
        self.watcher = PodWatcher(self.kube, self.work, self._selector(), self.victim,
                                  self.ctx.inventory.step_timeout_s)
        self.watcher.want = self.found_replicas
        self.watcher.thread.start()
        if not self.watcher.started.wait(30) or self.watcher.error is not None:
            raise Inconclusive(f"could not watch the workload's pods: {self.watcher.error}")
        self.t0 = time.monotonic()
        if self.ctx.variant == "drain":
            result = self.kube.drain(self.victim, namespaces=self.kube.target.namespaces,
                                     deadline_s=min(60.0, self.ctx.inventory.step_timeout_s))
            self.ctx.event("drain.done", evicted=len(result.evicted), blocked=len(result.blocked),
                           retries=result.retries)
            for pod, why in result.blocked.items():
                self.ctx.fail(f"drain of {self.victim} blocked for {pod}: {why}")
        else:
            self.kube.add_taint(self.victim, Taint(DRILL_TAINT_KEY, "NoExecute", "drill"))

    def detect(self) -> bool:
        return bool(self.watcher.lost) or self.watcher.done

    def runbook(self) -> list[RunbookStep]:
        return [RunbookStep("wait-rescheduled", self.wait_rescheduled,
                            "the control plane rebinds every lost pod and it turns Ready"),
                RunbookStep("rollout-complete", self.rollout_complete,
                            "the Deployment's rollout is complete"),
                RunbookStep("service-ready", self.service_ready,
                            "the InferenceService reports Ready")]

    def wait_rescheduled(self) -> None:
        w = self.watcher
        w.thread.join(self.ctx.inventory.step_timeout_s)
        if w.error is not None:
            raise Inconclusive(f"the pod watch failed: {w.error}")
        pods: list[dict[str, Scalar]] = []
        for key, (node, bound) in sorted(w.bound.items(), key=lambda kv: kv[1][1]):
            ready = w.ready.get(key)
            entry: dict[str, Scalar] = {"pod": key, "node": node, "rescheduled_s": round(bound - self.t0, 3),
                     "ready_s": None if ready is None else round(ready - self.t0, 3)}
            pods.append(entry)
            self.ctx.event("pod.rescheduled", **entry)
        self.ctx.findings.sections["kube"] = {
            "node": self.victim, "variant": self.ctx.variant, "lost": sorted(w.lost),
            "pods": pods, "relists": self.kube.relists}
        if not w.done:
            raise StepFailed(f"{len(w.lost)} pod(s) lost; replacements not all Ready on another "
                             f"node within {self.ctx.inventory.step_timeout_s:g} s")

    def rollout_complete(self) -> None:
        st = self.kube.wait_rollout(self.work.namespace, self.work.deployment,
                                    self.ctx.inventory.step_timeout_s)
        if not st.done:
            raise StepFailed(f"rollout of {self.work.deployment}: {st.message}")

    def service_ready(self) -> None:
        if self.work.inference_service is None:
            return
        ok, why = self.kube.inference_service_ready(self.work.namespace,
                                                    self.work.inference_service)
        if not ok:
            raise StepFailed(f"InferenceService {self.work.inference_service} not Ready: {why}")

    def verify(self) -> None:
        w = self.work
        live = [p for p in self.kube.pods(w.namespace, selector=self._selector())
                if not p.deleting]
        if any(p.node == self.victim for p in live):
            self.ctx.fail(f"a pod of {w.deployment} still runs on the lost node {self.victim}")
        if sum(1 for p in live if p.ready) < self.found_replicas:
            self.ctx.fail(f"fewer than {self.found_replicas} Ready replicas after recovery")
        ready = sum(1 for p in live if p.ready)
        on_victim = any(p.node == self.victim for p in live)
        # the service check this drill can make: every replica Ready, none on the lost node
        self.ctx.findings.smoke.update({
            "ready_replicas": ready, "passed": ready >= self.found_replicas and not on_victim,
            "summary": f"{ready} of {self.found_replicas} replicas Ready off node {self.victim}"})

    def revert(self) -> None:
        assert self.victim is not None
        k, w = self.kube, self.work
        k.remove_taint(self.victim, DRILL_TAINT_KEY)
        if not self.found_node.unschedulable and k.node(self.victim).unschedulable:
            k.uncordon(self.victim)
        if k.replicas("Deployment", w.namespace, w.deployment) != self.found_replicas:
            k.scale("Deployment", w.namespace, w.deployment, self.found_replicas)
        st = k.wait_rollout(w.namespace, w.deployment, self.ctx.inventory.step_timeout_s)
        now = k.node(self.victim)
        diffs = []
        if now.unschedulable != self.found_node.unschedulable:
            diffs.append(f"unschedulable {now.unschedulable}")
        if set(now.taints) != set(self.found_node.taints):
            diffs.append(f"taints {now.taints}")
        if k.replicas("Deployment", w.namespace, w.deployment) != self.found_replicas:
            diffs.append("replica count")
        if not st.done:
            diffs.append(f"rollout: {st.message}")
        if diffs:
            raise StepFailed(f"cluster not as found after revert: {'; '.join(diffs)}")
