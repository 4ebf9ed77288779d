"""inference-site-loss on a Kubernetes cluster, against the lab's Kubernetes API in-process
(no Ceph lab)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_rbac import outside_role

from harness.inventory import load_inventory
from harness.model import Verdict
from harness.runner import DrillRequest, run_drill
from lab.kubeapi import KubeApi, seed_fleet
from lab.kubestore import KubeStore
from lab.procs import free_port
from scenarios.kube_site_loss import KubeInferenceSiteLoss

INVENTORY = """\
version: 1
site: kube-lab
targets:
  gpu-cluster:
    kind: kubernetes
    kubeconfig: kubeconfig
    context: drillbook-lab
    namespaces: [inference]
    max_nodes: MAX
    kubelet_stop: [PYTHON, -m, lab.kubelet, stop, --kubeconfig, CFG, --node, "{node}"]
    kubelet_start: [PYTHON, -m, lab.kubelet, start, --kubeconfig, CFG, --node, "{node}"]
    drill_safe: true
assets:
  - {id: lab-mlp-k8s, tier: 1, kind: kube-inference-service, cluster: gpu-cluster,
     namespace: inference, deployment: lab-mlp-predictor, inference_service: lab-mlp
     FALLBACK}
objectives:
  tiers:
    1: {rto_s: 120, rpo_s: 600}
probe: {interval_s: 0.1, detect_timeout_s: 30, step_timeout_s: 30}
"""
WITH_FALLBACK = ", fallback_deployment: lab-mlp-cpu, fallback_golden: golden-cpu.json"


def steady(api: KubeApi, timeout_s: float = 20.0) -> None:
    """Wait until every seeded pod is bound and Ready: a drill measures from a steady cluster
    (on a busy host the kubelet stand-in may not have started the pods yet)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with api.store.cond:
            pods = list(api.store.objects.get("pods", {}).values())
            want = sum(d["spec"].get("replicas", 1)
                       for d in api.store.objects.get("deployments", {}).values())
        if want and len(pods) >= want and all(p["spec"].get("nodeName") and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p.get("status", {}).get("conditions", [])) for p in pods):
            return
        time.sleep(0.05)
    raise AssertionError("the seeded cluster did not become steady")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[KubeApi]:
    api = KubeApi(KubeStore(ready_delay_s=0.2, notready_after_s=0.5, toleration_s=1))
    seed_fleet(api.store, service_port=free_port())
    api.start()
    steady(api)
    api.write_kubeconfig(tmp_path / "kubeconfig")
    (tmp_path / "golden-cpu.json").write_text(json.dumps({"inputs": [[0.0]],
                                                          "outputs": [[0.0]]}))
    try:
        yield api
    finally:
        api.stop()


def inventory(tmp_path: Path, *, max_nodes: int = 3, fallback: bool = True) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY.replace("PYTHON", sys.executable)
                    .replace("CFG", str(tmp_path / "kubeconfig"))
                    .replace("MAX", str(max_nodes))
                    .replace("FALLBACK", WITH_FALLBACK if fallback else ""))
    return path


def nodes(api: KubeApi) -> dict[str, tuple[object, ...]]:
    with api.store.cond:
        return {name: (n["spec"].get("unschedulable"), n["spec"].get("taints"),
                       sorted((c["type"], c["status"]) for c in n["status"]["conditions"]))
                for name, n in api.store.objects["nodes"].items()}


def drill(tmp_path: Path, variant: str, **kw: object) -> object:
    inv = load_inventory(inventory(tmp_path, **kw))  # type: ignore[arg-type]
    return run_drill(inv, DrillRequest(KubeInferenceSiteLoss, variant, "lab-mlp-k8s",
                                       tmp_path / "ev"), progress=lambda m: None).evidence


@pytest.mark.parametrize("variant", ["noexecute", "notready"])
def test_site_loss_passes_and_leaves_the_cluster_as_found(cluster: KubeApi, tmp_path: Path,
                                                          variant: str) -> None:
    before = nodes(cluster)
    ev = drill(tmp_path, variant)
    assert ev.verdict is Verdict.PASS, ev.reasons  # type: ignore[attr-defined]
    kube = ev.sections["kube"]  # type: ignore[attr-defined]
    assert sorted(kube["nodes"]) == ["gpu-0", "gpu-1", "gpu-2"] and len(kube["lost"]) == 2
    kept = [p for p in kube["pods"] if "deleted_s" not in p]  # some land on a node tainted next
    assert len(kept) == 2 and all(p["ready_s"] >= p["rescheduled_s"] for p in kept)
    names = [s.name for s in ev.steps]  # type: ignore[attr-defined]
    assert names.index("confirm-fallback") < names.index("rebuild-site")
    assert nodes(cluster) == before
    assert len(cluster.calls) > 10 and outside_role(cluster.calls) == []


def test_site_loss_refused_beyond_the_blast_radius_limit(cluster: KubeApi,
                                                         tmp_path: Path) -> None:
    before = nodes(cluster)
    ev = drill(tmp_path, "noexecute", max_nodes=2)
    assert ev.verdict is Verdict.INCONCLUSIVE  # type: ignore[attr-defined]
    assert any("max_nodes" in r for r in ev.reasons)  # type: ignore[attr-defined]
    assert nodes(cluster) == before


def test_site_loss_refused_without_a_cpu_fallback(cluster: KubeApi, tmp_path: Path) -> None:
    ev = drill(tmp_path, "noexecute", fallback=False)
    assert ev.verdict is Verdict.INCONCLUSIVE  # type: ignore[attr-defined]
    assert any("fallback" in r for r in ev.reasons)  # type: ignore[attr-defined]


def test_site_loss_refused_when_the_fallback_is_not_serving(cluster: KubeApi,
                                                            tmp_path: Path) -> None:
    with cluster.store.cond:
        d = cluster.store.objects["deployments"]["inference/lab-mlp-cpu"]
        d["spec"]["template"]["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "nowhere"}
        pods = [k for k in cluster.store.objects.get("pods", {}) if "lab-mlp-cpu" in k]
        for k in pods:
            cluster.store.delete("pods", "inference", k.split("/")[1])
    ev = drill(tmp_path, "noexecute")
    assert ev.verdict is Verdict.INCONCLUSIVE  # type: ignore[attr-defined]
    assert any("not serving" in r for r in ev.reasons)  # type: ignore[attr-defined]
