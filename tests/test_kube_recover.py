"""``drillbook recover`` for cluster drills, against the lab's Kubernetes API in-process.

A drill whose harness dies after inject leaves the fault in the cluster and, in its leases, the
found state its baseline recorded (harness/runbook/kube_recover.py). Here the "death" is an
adapter that does everything the fault needs and none of the undoing, so the drill's own revert
changes nothing and its leases are kept as an orphan, exactly as a killed harness leaves them;
then recover, with a working adapter, must start the kubelet, clear the drill's condition and
taint, uncordon, restore the replica count, and verify the cluster as found.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_kube_drill import INVENTORY, node_state

from harness.context import Adapters, DrillContext
from harness.inventory import Inventory, load_inventory
from harness.lease import MemoryResolver
from harness.lease_stores import MemoryLeaseStore
from harness.model import Verdict
from harness.recover import recover_all
from harness.runbook.kube_recover import SAFETY_KIND, restore
from harness.runner import DrillRequest, run_drill
from harness.scenario import get_scenario
from harness.targets.kube import KubeCluster
from lab.kubeapi import KubeApi, seed_fleet
from lab.kubestore import KubeStore

DEPLOYMENT = "inference/lab-mlp-predictor"


class GoneWhenUnheld(MemoryLeaseStore):
    """A lease store that can tell its holder is gone (as PostgreSQL's advisory locks can):
    once a drill lets go of its leases without releasing them, they are orphans at once."""

    def __init__(self) -> None:
        super().__init__()
        self.unheld: set[str] = set()

    def unhold(self, key: str) -> None:
        self.unheld.add(key)

    def holder_alive(self, key: str) -> bool | None:
        return False if key in self.unheld else None


class DiesAfterInject(KubeCluster):
    """Breaks what the drill asks and undoes nothing: the cluster as a dead harness leaves it."""

    def kubelet(self, node: str, *, running: bool, timeout_s: float = 60.0) -> None:
        if not running:
            super().kubelet(node, running=False, timeout_s=timeout_s)

    def uncordon(self, name: str) -> None:
        pass

    def remove_taint(self, name: str, key: str) -> None:
        pass

    def clear_node_condition(self, name: str, ctype: str) -> None:
        pass

    def scale(self, kind: str, namespace: str, name: str, replicas: int) -> None:
        pass


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[KubeApi, Inventory]]:
    api = KubeApi(KubeStore(ready_delay_s=0.2, notready_after_s=0.3, toleration_s=1),
                  tick_s=0.02)
    seed_fleet(api.store)
    api.start()
    cfg = api.write_kubeconfig(tmp_path / "kubeconfig")
    path = tmp_path / "inventory.yaml"
    # short waits: the dead drill's own revert waits them out before giving up
    path.write_text(INVENTORY.replace("PYTHON", sys.executable)
                    .replace("--kubeconfig, kubeconfig", f"--kubeconfig, {cfg}")
                    .replace("step_timeout_s: 60", "step_timeout_s: 2"))
    inventory = load_inventory(path)
    KubeCluster(inventory.kube("gpu-cluster")).wait_rollout("inference", "lab-mlp-predictor", 10)
    try:
        yield api, inventory
    finally:
        api.stop()


def replicas(api: KubeApi) -> int:
    with api.store.cond:
        return int(api.store.objects["deployments"][DEPLOYMENT]["spec"]["replicas"])


def scale_down(api: KubeApi) -> Callable[[DrillContext, Callable[[], None]], None]:
    """A runbook step that also scales the workload down (a dead drill may leave it so)."""
    def step(ctx: DrillContext, orig: Callable[[], None]) -> None:
        try:
            orig()
        finally:
            with api.store.cond:
                d: dict[str, Any] = api.store.get("deployments", "inference",
                                                  "lab-mlp-predictor")
                api.store.replace("deployments", {**d, "spec": {**d["spec"], "replicas": 1}})
    return step


@pytest.mark.parametrize("variant", ["notready", "gpu-fault"])
def test_recover_puts_the_cluster_back_after_a_dead_drill(
        cluster: tuple[KubeApi, Inventory], tmp_path: Path, variant: str) -> None:
    api, inventory = cluster
    before, want = node_state(api), replicas(api)
    store = GoneWhenUnheld()
    dead = DiesAfterInject(inventory.kube("gpu-cluster"))
    result = run_drill(inventory, DrillRequest(get_scenario("gpu-node-loss"), variant,
                                               "lab-mlp-k8s", tmp_path / "ev"),
                       progress=lambda m: None, adapters={"gpu-cluster": dead},
                       lease_resolver=MemoryResolver(store),
                       overrides={"wait-rescheduled": scale_down(api)})
    assert not result.evidence.reverted
    assert node_state(api) != before and replicas(api) == 1  # the fault is still there

    lines: list[str] = []
    outcomes = recover_all(inventory, Adapters(inventory, tmp_path / "work"),
                           MemoryResolver(store), tmp_path / "ev", progress=lines.append)
    assert len(outcomes) == 1, lines
    out = outcomes[0]
    assert out.verified, lines
    assert out.orphan.scenario == "gpu-node-loss" and out.orphan.variant == variant
    assert [s.kind for s in out.orphan.safety] == [SAFETY_KIND]
    done = "\n".join(out.restored)
    assert "scale inference/lab-mlp-predictor from 1 back to 2 replicas" in done
    if variant == "notready":
        assert "start the kubelet on" in done
    else:
        assert "clear condition GpuXidCriticalError" in done and "uncordon" in done
    assert "verified as found" in done
    assert node_state(api) == before and replicas(api) == want
    assert store.list_keys() == []  # leases released


def test_a_condition_the_drill_did_not_write_is_left_and_reported(
        cluster: tuple[KubeApi, Inventory], tmp_path: Path) -> None:
    """Only the drill's own marks go: a GPU condition without the drill's note may be a real
    GPU monitor's, so recover leaves it and does not call the cluster as found."""
    from harness.errors import StepFailed
    from harness.runbook.kube_recover import node_json
    from harness.targets.kube_model import Condition

    _, inventory = cluster
    kube = KubeCluster(inventory.kube("gpu-cluster"))
    node = kube.gpu_nodes()[0]
    detail = {"target": "gpu-cluster", "namespace": "inference", "variant": "gpu-fault",
              "nodes": [node_json(kube.node(node.name))], "replicas": {"lab-mlp-predictor": 2}}
    kube.set_node_condition(node.name, Condition(
        "GpuXidCriticalError", "True", "XidCriticalError", "Xid 79 from the real monitor"))
    with pytest.raises(StepFailed, match="not the drill's"):
        restore(kube, detail, 1.0)
    assert "GpuXidCriticalError" in kube.node(node.name).conditions
    assert restore(kube, {**detail, "variant": "drain"}, 1.0, dry_run=True) == []


def test_recover_closes_the_dead_drills_evidence(cluster: tuple[KubeApi, Inventory],
                                                 tmp_path: Path) -> None:
    """The dead drill's folder (journal, no evidence) gets its evidence: INCONCLUSIVE, harness
    died, with what recover did and which implementation ran."""
    import json

    _, inventory = cluster
    store = GoneWhenUnheld()
    result = run_drill(inventory, DrillRequest(get_scenario("gpu-node-loss"), "noexecute",
                                               "lab-mlp-k8s", tmp_path / "ev"),
                       progress=lambda m: None,
                       adapters={"gpu-cluster": DiesAfterInject(inventory.kube("gpu-cluster"))},
                       lease_resolver=MemoryResolver(store))
    assert result.evidence.verdict is Verdict.FAIL  # its revert could not verify
    out = recover_all(inventory, Adapters(inventory, tmp_path / "work"), MemoryResolver(store),
                      tmp_path / "ev", progress=lambda m: None)[0]
    assert out.verified and "remove taint drillbook.io/drill" in "\n".join(out.restored)
    doc = json.loads((result.directory / "evidence.json").read_text())
    assert doc["verdict"] == "INCONCLUSIVE" and doc["scenario"] == "gpu-node-loss"
    assert doc["sections"]["recovery"]["verified_as_found"] is True
    assert doc["sections"]["implementation"]["platform"] == "kubernetes"
