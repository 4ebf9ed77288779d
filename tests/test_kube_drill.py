"""gpu-node-loss on a Kubernetes cluster, end to end against the lab's Kubernetes API (no Ceph
lab needed)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_rbac import outside_role
from test_kube_site import steady

from harness.inventory import load_inventory
from harness.model import Verdict
from harness.runner import DrillRequest, run_drill
from lab.kubeapi import KubeApi, seed_fleet
from lab.kubestore import KubeStore
from scenarios.kube_node_loss import KubeGpuNodeLoss

INVENTORY = """\
version: 1
site: kube-lab
targets:
  gpu-cluster:
    kind: kube
    kubeconfig: kubeconfig
    context: drillbook-lab
    namespaces: [inference]
    max_nodes: 1
    kubelet_stop: [PYTHON, -m, lab.kubelet, stop, --kubeconfig, kubeconfig, --node, "{node}"]
    kubelet_start: [PYTHON, -m, lab.kubelet, start, --kubeconfig, kubeconfig, --node, "{node}"]
    drill_safe: true
assets:
  - {id: lab-mlp-k8s, tier: 1, kind: kube-inference-service, cluster: gpu-cluster,
     namespace: inference, deployment: lab-mlp-predictor, inference_service: lab-mlp}
objectives:
  tiers:
    1: {rto_s: 120, rpo_s: 600}
probe: {interval_s: 0.1, detect_timeout_s: 30, step_timeout_s: 60}
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[KubeApi, Path]]:
    api = KubeApi(KubeStore(ready_delay_s=0.3, notready_after_s=0.5, toleration_s=1))
    seed_fleet(api.store)
    api.start()
    steady(api)  # a drill measures from a rolled-out cluster
    cfg = api.write_kubeconfig(tmp_path / "kubeconfig")
    inv = tmp_path / "inventory.yaml"
    inv.write_text(INVENTORY.replace("PYTHON", sys.executable).replace(
        "--kubeconfig, kubeconfig", f"--kubeconfig, {cfg}"))
    try:
        yield api, inv
    finally:
        api.stop()


def node_state(api: KubeApi) -> dict[str, tuple[object, ...]]:
    with api.store.cond:
        return {name: (n["spec"].get("unschedulable"), n["spec"].get("taints"),
                       sorted((c["type"], c["status"]) for c in n["status"]["conditions"]))
                for name, n in api.store.objects["nodes"].items()}


@pytest.mark.parametrize("variant", ["drain", "noexecute", "notready", "gpu-fault"])
def test_node_loss_passes_and_leaves_the_cluster_as_found(cluster: tuple[KubeApi, Path],
                                                          tmp_path: Path, variant: str) -> None:
    api, inv_path = cluster
    before = node_state(api)
    result = run_drill(load_inventory(inv_path),
                       DrillRequest(KubeGpuNodeLoss, variant, "lab-mlp-k8s", tmp_path / "ev"),
                       progress=lambda m: None)
    ev = result.evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    kube = ev.sections["kube"]
    pods = kube["pods"]
    assert len(kube["lost"]) == 1 and pods
    assert all(p["node"] not in kube["nodes"] and p["ready_s"] is not None
               and p["ready_s"] >= p["rescheduled_s"] > 0 for p in pods)
    if variant == "notready":  # evicted only after the toleration time (1 s here)
        assert min(kube["lost_s"].values()) >= 1.0
    if variant == "gpu-fault":
        assert kube["gpu_fault"]["simulated"] is True
        assert "not broken" in kube["gpu_fault"]["note"]
        assert next(s.name for s in ev.steps if s.phase.value == "runbook") == "cordon-and-evict"
    assert ev.reverted and node_state(api) == before
    # least privilege: every call this drill made is allowed by deploy/rbac.yaml
    assert len(api.calls) > 10 and outside_role(api.calls) == []


def test_refused_when_the_other_gpus_cannot_hold_the_pods(cluster: tuple[KubeApi, Path],
                                                          tmp_path: Path) -> None:
    api, inv_path = cluster
    with api.store.cond:
        api.store.objects["deployments"]["inference/lab-mlp-predictor"]["spec"]["replicas"] = 3
    for _ in range(20):
        api.store.reconcile()
    before = node_state(api)
    result = run_drill(load_inventory(inv_path),
                       DrillRequest(KubeGpuNodeLoss, "drain", "lab-mlp-k8s", tmp_path / "ev"),
                       progress=lambda m: None)
    assert result.evidence.verdict is Verdict.INCONCLUSIVE
    assert any("real outage" in r for r in result.evidence.reasons)
    assert node_state(api) == before


def test_drain_blocked_by_a_budget_fails(cluster: tuple[KubeApi, Path], tmp_path: Path) -> None:
    api, inv_path = cluster
    with api.store.cond:
        api.store.objects["poddisruptionbudgets"]["inference/lab-mlp-pdb"]["spec"] = {
            "maxUnavailable": 0,
            "selector": {"matchLabels": {"app": "lab-mlp",
                                         "serving.kserve.io/inferenceservice": "lab-mlp"}}}
        api.store.reconcile()  # the disruption controller sees the tightened budget
    before = node_state(api)
    # short waits: the budget blocks every eviction, so each wait runs to its end
    inv_path.write_text(INVENTORY.replace("detect_timeout_s: 30", "detect_timeout_s: 0.5")
                        .replace("step_timeout_s: 60", "step_timeout_s: 1")
                        .replace("PYTHON", sys.executable))
    inv = load_inventory(inv_path)
    result = run_drill(inv, DrillRequest(KubeGpuNodeLoss, "drain", "lab-mlp-k8s",
                                         tmp_path / "ev"), progress=lambda m: None)
    assert result.evidence.verdict is Verdict.FAIL, result.evidence.reasons
    assert any("disruption budget" in r for r in result.evidence.reasons)
    assert node_state(api) == before


def test_kubernetes_lease_store_keeps_the_lease_contract(cluster: tuple[KubeApi, Path]) -> None:
    """Leases of a cluster-only site are coordination.k8s.io Leases, with the same
    create-if-absent / compare-and-swap contract as the S3 and PostgreSQL stores."""
    from test_lease import check_create_race, check_store_contract

    from harness.inventory import load_inventory
    from harness.lease_kube import KubeLeaseStore
    from harness.targets.kube import KubeCluster

    _, inv_path = cluster
    target = load_inventory(inv_path).kube("gpu-cluster")

    def make() -> KubeLeaseStore:
        return KubeLeaseStore(KubeCluster(target))

    check_store_contract(make(), "gpu-cluster/node/gpu-node-1")
    check_create_race(make, "gpu-cluster/node/gpu-node-2", threads=4)
