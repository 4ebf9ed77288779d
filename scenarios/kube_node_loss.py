"""Scenario ``gpu-node-loss`` on a Kubernetes cluster: one GPU node of the cluster is lost.

The cluster implementation of ``gpu-node-loss`` (entry point ``gpu-node-loss@kubernetes``,
platform ``kubernetes``): an asset of kind ``kube-inference-service`` is drilled with this one,
a process fleet behind HAProxy with scenarios/gpu_node_loss.py (harness/scenario.py
``resolve`` picks by asset and variant). Variants:

  drain      the node is cordoned and its pods evicted through the Eviction API (disruption
             budgets honoured: a drain they block is a finding, the drill FAILs).
  noexecute  a NoExecute taint is put on the node: its pods are evicted as from a failed node.
  notready   the node's kubelet is stopped (the inventory's ``kubelet_stop`` command): the
             control plane marks it NotReady after missed heartbeats and evicts its pods after
             their toleration time (300 s by default on a real cluster).
  gpu-fault  a node condition (``gpu_fault_condition``, an Xid critical error) is written as a
             GPU health monitor would; the runbook cordons the node and evicts its pods. The
             GPU is not broken: the evidence says the fault was a signal.

The node is the one running the first pod of the asset's Deployment. Guards (preflight, before
anything changes): drill-safe namespaces, the blast-radius limit, every pod on the node in a
drill-safe namespace, and free GPUs elsewhere for every pod that moves. A pod watch started
before the fault records per pod when its replacement was bound (``rescheduled_s``) and Ready
(``ready_s``). With ``served_by`` and ``golden`` on the asset, load runs through the service
from before the fault until recovery and an acceptance run is an SLO gate. Revert undoes exactly
what the drill did and fails unless the cluster is as found.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from harness.blast import Touch, TouchKind
from harness.context import DrillContext
from harness.errors import Inconclusive, StepFailed
from harness.golden import GoldenPair as Golden
from harness.inventory_kube import ASSET_KIND, KubeWorkload
from harness.model import RestorePoint
from harness.runbook import kube as rb
from harness.runbook.kube_load import ServiceLoad
from harness.runbook.kube_recover import record_found_state
from harness.scenario import RunbookStep, Scenario
from harness.targets.kube import KubeCluster


class KubeGpuNodeLoss(Scenario):
    name: ClassVar[str] = "gpu-node-loss"
    platform: ClassVar[str] = rb.PLATFORM
    summary: ClassVar[str] = ("lose one GPU node of a Kubernetes cluster: drain, NoExecute "
                              "taint, NotReady kubelet or a GPU fault signal; the pods are "
                              "rescheduled")
    variants: ClassVar[tuple[str, ...]] = rb.NODE_VARIANTS
    asset_kinds: ClassVar[tuple[str, ...]] = (ASSET_KIND,)
    destructive: ClassVar[bool] = True
    blast_radius: ClassVar[str] = "one GPU node of one cluster; the workload's replicas"

    def __init__(self, ctx: DrillContext) -> None:
        super().__init__(ctx)
        self.state = rb.KubeState()
        self.faults: rb.NodeFaults | None = None
        self.load: ServiceLoad | None = None

    @property
    def kube(self) -> KubeCluster:
        return self.ctx.adapters.kube(self.ctx.asset.store)

    @property
    def work(self) -> KubeWorkload:
        assert self.ctx.asset.workload is not None
        return self.ctx.asset.workload

    @property
    def victim(self) -> str:
        if not self.state.victims:
            self.state.selector = rb.deployment_selector(self.kube, self.work.namespace,
                                                         self.work.deployment)
            gpu = {n.name for n in self.kube.gpu_nodes()}
            pods = sorted((p for p in self.kube.pods(self.work.namespace,
                                                     selector=self.state.selector)
                           if p.node in gpu and not p.deleting), key=lambda p: p.name)
            if not pods or pods[0].node is None:
                raise Inconclusive(f"no pod of {self.work.deployment} runs on a GPU node")
            self.state.victims = [pods[0].node]
        return self.state.victims[0]

    def touches(self) -> list[Touch]:
        cluster = self.ctx.asset.store
        return [Touch(cluster, TouchKind.NODE, self.victim),
                Touch(cluster, TouchKind.SERVICE, f"{self.work.namespace}/{self.work.deployment}")]

    def preflight(self) -> None:
        rb.check_guards(self.ctx, self.kube, self.work, [self.victim], need_capacity=True)
        if self.ctx.variant == "notready" and not self.kube.target.kubelet_stop:
            raise Inconclusive(f"cluster {self.kube.target.name} has no kubelet_stop/"
                               f"kubelet_start commands: the notready variant cannot run")
        rb.check_rolled_out(self.kube, self.work)
        self.state.found_nodes = {self.victim: self.kube.node(self.victim)}
        self.faults = rb.NodeFaults(self.ctx, self.kube, self.ctx.variant)
        w = self.work
        if w.served_by is not None:
            if w.golden is None:
                raise Inconclusive(f"asset {self.ctx.asset.id} names served_by but no golden "
                                   f"file: cannot load the service")
            self.load = ServiceLoad(self.ctx, self.ctx.adapters.inference(w.served_by),
                                    Golden.load(w.golden), len(self.runbook()))

    def baseline(self) -> None:
        w = self.work
        replicas = self.kube.replicas("Deployment", w.namespace, w.deployment)
        self.state.found_replicas = {w.deployment: replicas}
        node = self.state.found_nodes[self.victim]
        self.ctx.event("baseline.kube", node=node.name, replicas=replicas,
                       unschedulable=node.unschedulable, taints=len(node.taints))
        # before the fault: a drill killed mid-fault leaves `drillbook recover` what it found
        record_found_state(self.ctx.drill_id, self.ctx.asset.store, w.namespace,
                           self.ctx.variant, self.state)
        self.ctx.findings.restore_point = RestorePoint(
            "kube-deployment", f"{w.namespace}/{w.deployment} replicas={replicas}",
            datetime.now(UTC), f"{self.ctx.asset.store}:{w.namespace}/{w.deployment}")
        if self.load is not None:
            self.load.baseline()
            self.load.start()

    def inject(self) -> None:
        assert self.faults is not None
        w = self.work
        self.state.watcher = rb.PodWatcher(
            self.kube, w.namespace, self.state.selector, {self.victim},
            self.state.found_replicas[w.deployment],
            self.ctx.inventory.step_timeout_s * len(self.runbook()), self.ctx.clock.mono)
        self.state.watcher.begin()
        self.state.t0 = self.ctx.clock.mono()
        self.faults.inject(self.victim)
        for pod, why in self.faults.blocked.items():
            self.ctx.fail(f"drain of {self.victim} blocked for {pod}: {why}")
        if self.ctx.variant == "gpu-fault":
            self.ctx.findings.sections.setdefault("kube", {})["gpu_fault"] = {
                "simulated": True, "condition": self.kube.target.gpu_fault_condition,
                "node": self.victim, "note": rb.SIGNAL_NOTE}

    def detect(self) -> bool:
        v = self.ctx.variant
        if v == "notready":
            return not self.kube.node(self.victim).ready
        if v == "gpu-fault":
            c = self.kube.node(self.victim).conditions.get(self.kube.target.gpu_fault_condition)
            return c is not None and c.status == "True"
        w = self.state.watcher
        return w is not None and (bool(w.lost) or w.done)

    def runbook(self) -> list[RunbookStep]:
        steps = []
        if self.ctx.variant == "gpu-fault":
            steps.append(RunbookStep("cordon-and-evict", self.cordon_and_evict,
                                     "cordon the node the GPU monitor flagged, evict its pods"))
        return steps + [
            RunbookStep("wait-rescheduled", self.wait_rescheduled,
                        "the control plane rebinds every lost pod and it turns Ready"),
            RunbookStep("rollout-complete", self.rollout_complete,
                        "the Deployment's rollout is complete"),
            RunbookStep("service-ready", self.service_ready,
                        "the InferenceService reports Ready"),
        ]

    def cordon_and_evict(self) -> None:
        assert self.faults is not None
        self.faults.cordon_and_evict(self.victim)

    def wait_rescheduled(self) -> None:
        rb.wait_rescheduled(self.ctx, self.state)

    def rollout_complete(self) -> None:
        rb.rollout_complete(self.ctx, self.kube, self.work)

    def service_ready(self) -> None:
        rb.service_ready(self.ctx, self.kube, self.work)

    def verify(self) -> None:
        rb.verify_placement(self.ctx, self.kube, self.work, self.state)
        if self.load is not None:
            self.load.verify()

    def revert(self) -> None:
        if self.load is not None:
            self.load.stop()
        if self.faults is None:
            raise StepFailed("nothing to revert: preflight did not finish")
        rb.revert_cluster(self.ctx, self.kube, self.faults, self.state, self.work.namespace)

    def cleanup(self) -> None:
        if self.load is not None:
            self.load.stop()
