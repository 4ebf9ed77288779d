"""Scenario ``inference-site-loss`` on a Kubernetes cluster: every GPU node is lost.

The cluster implementation of ``inference-site-loss`` (entry point
``inference-site-loss@kubernetes``, platform ``kubernetes``; the process-fleet one,
scenarios/inference_site_loss.py, drives node processes and HAProxy). Every GPU node is taken out at once (variant ``noexecute``: a
NoExecute taint on each, so their pods are evicted as from failed nodes; ``notready``: every
kubelet stopped, evicted after the toleration time). The predictor's pods have nowhere to go:
traffic must degrade to the CPU fallback (the asset's ``fallback_deployment``), then come back
once the nodes return and the pods are rescheduled onto them.

Guards: losing every GPU is the point, so the spare-capacity guard does not apply; instead the
CPU fallback must exist and be rolled out, every GPU node must be within the target's
``max_nodes``, and every pod on them in a drill-safe namespace. The runbook confirms the degraded
service (the fallback model's golden outputs through the service), brings the nodes back (the
site rebuilt), and waits for every replica to be rescheduled and Ready. Revert uncordons,
removes the taints, restarts kubelets, restores the replica counts and checks the cluster is as
found.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from harness.blast import Touch, TouchKind
from harness.context import DrillContext
from harness.errors import GuardRefused, Inconclusive, StepFailed
from harness.golden import GoldenPair as Golden
from harness.inventory_kube import ASSET_KIND, KubeWorkload
from harness.model import RestorePoint
from harness.runbook import kube as rb
from harness.runbook.kube_load import ServiceLoad
from harness.runbook.kube_recover import record_found_state
from harness.scenario import RunbookStep, Scenario
from harness.targets.kube import KubeCluster


class KubeInferenceSiteLoss(Scenario):
    name: ClassVar[str] = "inference-site-loss"
    platform: ClassVar[str] = rb.PLATFORM
    summary: ClassVar[str] = ("lose every GPU node of a Kubernetes cluster; traffic degrades "
                              "to the CPU fallback Deployment, then comes back")
    variants: ClassVar[tuple[str, ...]] = ("noexecute", "notready")
    asset_kinds: ClassVar[tuple[str, ...]] = (ASSET_KIND,)
    destructive: ClassVar[bool] = True
    blast_radius: ClassVar[str] = "every GPU node of one cluster (not the CPU fallback)"

    def __init__(self, ctx: DrillContext) -> None:
        super().__init__(ctx)
        self.state = rb.KubeState()
        self.faults: rb.NodeFaults | None = None
        self.load: ServiceLoad | None = None
        self.fallback: Golden | None = None

    @property
    def kube(self) -> KubeCluster:
        return self.ctx.adapters.kube(self.ctx.asset.store)

    @property
    def work(self) -> KubeWorkload:
        assert self.ctx.asset.workload is not None
        return self.ctx.asset.workload

    def victims(self) -> list[str]:
        if not self.state.victims:
            self.state.victims = sorted(n.name for n in self.kube.gpu_nodes())
            if not self.state.victims:
                raise Inconclusive(f"cluster {self.kube.target.name} has no GPU node")
        return self.state.victims

    def touches(self) -> list[Touch]:
        cluster = self.ctx.asset.store
        return [*(Touch(cluster, TouchKind.NODE, n) for n in self.victims()),
                Touch(cluster, TouchKind.SERVICE, f"{self.work.namespace}/{self.work.deployment}")]

    def preflight(self) -> None:
        w = self.work
        if w.fallback_deployment is None or w.fallback_golden is None:
            raise GuardRefused(f"asset {self.ctx.asset.id} names no fallback_deployment: losing "
                               f"every GPU node would leave no service at all")
        rb.check_guards(self.ctx, self.kube, w, self.victims(), need_capacity=False)
        if self.ctx.variant == "notready" and not self.kube.target.kubelet_stop:
            raise Inconclusive(f"cluster {self.kube.target.name} has no kubelet_stop/"
                               f"kubelet_start commands: the notready variant cannot run")
        rb.check_rolled_out(self.kube, w)
        fb = self.kube.rollout_status(w.namespace, w.fallback_deployment)
        if not fb.done or fb.available < 1:
            raise GuardRefused(f"the CPU fallback {w.fallback_deployment} is not serving "
                               f"({fb.message}): refusing to lose every GPU node")
        on_gpu = [p.key for p in self.kube.pods(w.namespace) if p.node in self.victims()
                  and p.owner_name and p.owner_name.startswith(f"{w.fallback_deployment}-")]
        if on_gpu:
            raise GuardRefused(f"fallback pod(s) run on GPU nodes and would be lost too: "
                               f"{', '.join(on_gpu)}")
        self.state.selector = rb.deployment_selector(self.kube, w.namespace, w.deployment)
        self.state.found_nodes = {n: self.kube.node(n) for n in self.victims()}
        self.faults = rb.NodeFaults(self.ctx, self.kube, self.ctx.variant)
        self.fallback = Golden.load(w.fallback_golden)
        if w.served_by is not None:
            if w.golden is None:
                raise Inconclusive(f"asset {self.ctx.asset.id} names served_by but no golden "
                                   f"file")
            self.load = ServiceLoad(self.ctx, self.ctx.adapters.inference(w.served_by),
                                    Golden.load(w.golden), len(self.runbook()))

    def baseline(self) -> None:
        w = self.work
        assert w.fallback_deployment is not None
        self.state.found_replicas = {
            d: self.kube.replicas("Deployment", w.namespace, d)
            for d in (w.deployment, w.fallback_deployment)}
        self.ctx.event("baseline.kube", nodes=",".join(self.victims()),
                       replicas=self.state.found_replicas[w.deployment],
                       fallback_replicas=self.state.found_replicas[w.fallback_deployment])
        # before the fault: a drill killed mid-fault leaves `drillbook recover` what it found
        record_found_state(self.ctx.drill_id, self.ctx.asset.store, w.namespace,
                           self.ctx.variant, self.state)
        self.ctx.findings.restore_point = RestorePoint(
            "kube-deployment", f"{w.namespace}/{w.deployment} "
            f"replicas={self.state.found_replicas[w.deployment]}",
            datetime.now(UTC), f"{self.ctx.asset.store}:{w.namespace}/{w.deployment}")
        if self.load is not None:
            self.load.baseline()
            self.load.start()

    def inject(self) -> None:
        assert self.faults is not None
        w = self.work
        # the site comes back: replacements land on the same nodes, nowhere is avoided
        self.state.watcher = rb.PodWatcher(
            self.kube, w.namespace, self.state.selector, set(self.victims()),
            self.state.found_replicas[w.deployment],
            self.ctx.inventory.step_timeout_s * len(self.runbook()), self.ctx.clock.mono,
            avoid=set())
        self.state.watcher.begin()
        self.state.t0 = self.ctx.clock.mono()
        for node in self.victims():
            self.faults.inject(node)
        self.ctx.event("fault.site", nodes=",".join(self.victims()))

    def detect(self) -> bool:
        """No predictor pod is Ready any more: the site's GPU service is gone."""
        live = [p for p in self.kube.pods(self.work.namespace, selector=self.state.selector)
                if not p.deleting and p.ready]
        return not live

    def runbook(self) -> list[RunbookStep]:
        return [
            RunbookStep("confirm-fallback", self.confirm_fallback,
                        "the service answers with the CPU fallback model's golden outputs"),
            RunbookStep("rebuild-site", self.rebuild,
                        "bring every GPU node back (untaint / restart kubelets)"),
            RunbookStep("wait-rescheduled", self.wait_rescheduled,
                        "every replica rescheduled onto a GPU node and Ready"),
            RunbookStep("rollout-complete", self.rollout_complete,
                        "the Deployment's rollout is complete"),
            RunbookStep("service-ready", self.service_ready, "the InferenceService is Ready"),
        ]

    def confirm_fallback(self) -> None:
        w = self.work
        assert w.fallback_deployment is not None and self.fallback is not None
        st = self.kube.rollout_status(w.namespace, w.fallback_deployment)
        if st.available < 1:
            raise StepFailed(f"the CPU fallback {w.fallback_deployment} has no available "
                             f"replica: there is no degraded service")
        if w.served_by is not None:
            got = self.ctx.adapters.inference(w.served_by).infer(self.fallback.inputs)
            if got != self.fallback.outputs:
                raise StepFailed("the service does not answer with the fallback model's golden "
                                 "outputs while every GPU node is lost")
        self.ctx.event("service.degraded", fallback=w.fallback_deployment)

    def rebuild(self) -> None:
        assert self.faults is not None and self.state.watcher is not None
        # rebuild once the control plane has given up on the lost nodes' pods, as after a real
        # site loss: a NotReady node is detected (pods not Ready) before its pods are evicted,
        # and healing it in between would drill a blip, not the loss of the site
        want = self.state.found_replicas[self.work.deployment]
        deadline = self.ctx.clock.mono() + self.ctx.inventory.step_timeout_s
        while len(self.state.watcher.lost) < want and self.ctx.clock.mono() < deadline:
            self.ctx.clock.sleep(0.05)
        self.ctx.event("site.pods-lost", pods=len(self.state.watcher.lost), of=want)
        self.faults.heal(self.state.found_nodes)
        self.ctx.event("site.rebuilt", nodes=",".join(self.victims()))

    def wait_rescheduled(self) -> None:
        rb.wait_rescheduled(self.ctx, self.state)

    def rollout_complete(self) -> None:
        rb.rollout_complete(self.ctx, self.kube, self.work)

    def service_ready(self) -> None:
        rb.service_ready(self.ctx, self.kube, self.work)

    def verify(self) -> None:
        w = self.work
        live = [p for p in self.kube.pods(w.namespace, selector=self.state.selector)
                if not p.deleting and p.ready]
        gpu = set(self.victims())
        want = self.state.found_replicas[w.deployment]
        on_gpu = sum(1 for p in live if p.node in gpu)
        self.ctx.findings.smoke.update({
            "ready_replicas": on_gpu, "passed": on_gpu >= want,
            "summary": f"{on_gpu} of {want} replicas Ready on GPU nodes after the site returned"})
        if on_gpu < want:
            self.ctx.fail(f"{on_gpu} of {want} replicas Ready on GPU nodes after recovery")
        if self.load is not None:
            self.load.verify(degraded=True)

    def revert(self) -> None:
        if self.load is not None:
            self.load.stop()
        assert self.faults is not None
        rb.revert_cluster(self.ctx, self.kube, self.faults, self.state, self.work.namespace)

    def cleanup(self) -> None:
        if self.load is not None:
            self.load.stop()
