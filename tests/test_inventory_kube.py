"""The ``kube`` target kind in the inventory: a good one loads, mistakes name file, line, field."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InventoryError
from harness.inventory import load_inventory
from harness.inventory_kube import KubeTarget

INVENTORY = """\
version: 1
site: k
targets:
  store: {kind: s3, endpoint: http://127.0.0.1:9, access_key: AK, secret_key: SK}
  gpu-cluster:
    kind: kube
    kubeconfig: kubeconfig.yaml
    context: dc1
    namespaces: [inference]
    gpu_node_selector: drillbook.io/gpu=true
    max_nodes: 2
    drill_safe: true
assets:
  - {id: w, tier: 1, kind: model-weights, store: store, bucket: b, prefix: m/}
objectives:
  tiers:
    1: {rto_s: 300, rpo_s: 86400}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "kubeconfig.yaml").write_text("apiVersion: v1\nkind: Config\n")
    p = tmp_path / "inventory.yaml"
    p.write_text(text)
    return p


def test_kube_target_loads(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, INVENTORY))
    t = inv.kube("gpu-cluster")
    assert t == KubeTarget("gpu-cluster", (tmp_path / "kubeconfig.yaml").resolve(), "dc1",
                           False, ("inference",), "drillbook.io/gpu=true", "nvidia.com/gpu", 2,
                           True)


def test_in_cluster_needs_no_kubeconfig(tmp_path: Path) -> None:
    text = INVENTORY.replace("    kubeconfig: kubeconfig.yaml\n", "    in_cluster: true\n")
    t = load_inventory(write(tmp_path, text)).kube("gpu-cluster")
    assert t.in_cluster and t.kubeconfig is None and t.max_nodes == 2


@pytest.mark.parametrize(("old", "new", "line", "field", "message"), [
    ("    namespaces: [inference]\n", "", 6, "targets.gpu-cluster.namespaces", "non-empty list"),
    ("max_nodes: 2", "max_nodes: 0", 11, "targets.gpu-cluster.max_nodes", "positive integer"),
    ("kubeconfig: kubeconfig.yaml", "kubeconfig: nope.yaml", 7,
     "targets.gpu-cluster.kubeconfig", "does not exist"),
    ("    context: dc1\n", "    context: dc1\n    in_cluster: true\n", 7,
     "targets.gpu-cluster.kubeconfig", "not both"),
    ("    drill_safe: true\n", "    drill_safe: true\n    nodes: [a]\n", 13,
     "targets.gpu-cluster.nodes", "unknown field"),
])
def test_bad_kube_target_names_line_and_field(tmp_path: Path, old: str, new: str, line: int,
                                              field: str, message: str) -> None:
    with pytest.raises(InventoryError) as info:
        load_inventory(write(tmp_path, INVENTORY.replace(old, new)))
    assert (info.value.line, info.value.field) == (line, field)
    assert message in info.value.message


def test_unknown_kind_lists_kube(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="kube"):
        load_inventory(write(tmp_path, INVENTORY.replace("kind: kube", "kind: k8s")))


ASSETS = """\
  frontend: {kind: inference, url: "http://127.0.0.1:9", model: m}
assets:
  - {id: svc, tier: 1, kind: kube-inference-service, cluster: gpu-cluster,
     namespace: inference, deployment: p, served_by: frontend, golden: g.json,
     fallback_deployment: p-cpu, fallback_golden: g.json}
"""


def with_service(tmp_path: Path, text: str = INVENTORY) -> str:
    (tmp_path / "g.json").write_text('{"inputs": [], "outputs": []}')
    head, _, tail = text.partition("assets:\n")
    return head + ASSETS + tail.split("\n", 1)[1]


def test_kind_kubernetes_with_kubelet_commands_and_a_served_workload(tmp_path: Path) -> None:
    text = with_service(tmp_path, INVENTORY.replace("kind: kube\n", "kind: kubernetes\n").replace(
        "    max_nodes: 2\n", "    max_nodes: 2\n    kubelet_stop: [ssh, '{node}', stop]\n"
                             "    kubelet_start: [ssh, '{node}', start]\n"
                             "    gpu_fault_condition: XidError\n"))
    inv = load_inventory(write(tmp_path, text))
    t = inv.kube("gpu-cluster")
    assert t.kubelet_stop == ("ssh", "{node}", "stop") and t.gpu_fault_condition == "XidError"
    w = inv.assets["svc"].workload
    assert w is not None and w.served_by == "frontend" and w.fallback_deployment == "p-cpu"
    assert w.golden == (tmp_path / "g.json").resolve()


@pytest.mark.parametrize(("old", "new", "message"), [
    ("    max_nodes: 2\n", "    max_nodes: 2\n    kubelet_stop: [ssh, x]\n", "kubelet_start"),
    ("served_by: frontend", "served_by: store", "not an inference target"),
    (", fallback_golden: g.json", "", "fallback_golden"),
])
def test_kube_service_mistakes_are_located(tmp_path: Path, old: str, new: str,
                                           message: str) -> None:
    text = with_service(tmp_path).replace(old, new)
    with pytest.raises(InventoryError, match=message):
        load_inventory(write(tmp_path, text))
