"""Sabotaged recoveries of the kube drills FAIL (in-process lab API, no Ceph lab).

Each test breaks one thing the drill must notice: the replica is never rescheduled (the lab's
scheduler stops binding), the node is left cordoned (an adapter whose uncordon does nothing), the
replica count is not restored (a runbook step scales down and the adapter's scale does nothing).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_kube_drill import INVENTORY

from harness.context import DrillContext
from harness.inventory import load_inventory
from harness.lease import MemoryResolver
from harness.model import Evidence, Verdict
from harness.runner import DrillRequest, run_drill
from harness.targets.kube import KubeCluster
from lab.kubeapi import KubeApi, seed_fleet
from lab.kubestore import KubeStore
from scenarios.kube_node_loss import KubeGpuNodeLoss


class PausableStore(KubeStore):
    """The lab store whose scheduler can be stopped: pending pods are never bound."""

    paused = False

    def _schedule(self, t: float) -> None:
        if not self.paused:
            super()._schedule(t)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[tuple[KubeApi, Path]]:
    api = KubeApi(PausableStore(ready_delay_s=0.2, notready_after_s=0.5, toleration_s=1))
    seed_fleet(api.store)
    api.start()
    cfg = api.write_kubeconfig(tmp_path / "kubeconfig")
    inv = tmp_path / "inventory.yaml"
    inv.write_text(INVENTORY.replace("PYTHON", sys.executable)
                   .replace("--kubeconfig, kubeconfig", f"--kubeconfig, {cfg}")
                   # the sabotaged waits run to their end: keep them short
                   .replace("step_timeout_s: 60", "step_timeout_s: 1.5"))
    KubeCluster(load_inventory(inv).kube("gpu-cluster")).wait_rollout(
        "inference", "lab-mlp-predictor", 10)
    try:
        yield api, inv
    finally:
        api.stop()


def drill(inv: Path, tmp_path: Path, variant: str, *, adapter: KubeCluster | None = None,
          overrides: dict[str, Callable[[DrillContext, Callable[[], None]], None]] | None = None
          ) -> Evidence:
    inventory = load_inventory(inv)
    # leases in memory: these tests are about the verdict (test_kube_drill.py drills with the
    # cluster's own Leases and checks every call against the role)
    return run_drill(inventory, DrillRequest(KubeGpuNodeLoss, variant, "lab-mlp-k8s",
                                             tmp_path / "ev"),
                     progress=lambda m: None, overrides=overrides,
                     adapters={"gpu-cluster": adapter} if adapter else None,
                     lease_resolver=MemoryResolver()).evidence


@pytest.mark.parametrize("variant", ["noexecute", "gpu-fault"])
def test_replica_never_rescheduled_fails(cluster: tuple[KubeApi, Path], tmp_path: Path,
                                         variant: str) -> None:
    api, inv = cluster
    store = api.store
    assert isinstance(store, PausableStore)
    store.paused = True

    def never_rescheduled(ctx: DrillContext, orig: Callable[[], None]) -> None:
        try:
            orig()
        finally:
            # the scheduler comes back once the step has given up, so revert need not wait
            # out its own timeout: the FAIL is the step's
            store.paused = False

    ev = drill(inv, tmp_path, variant, overrides={"wait-rescheduled": never_rescheduled})
    assert ev.verdict is Verdict.FAIL
    assert any("not all Ready on another node" in r for r in ev.reasons), ev.reasons
    assert ev.sections["kube"]["pods"] == []  # no replacement was ever bound
    assert ev.reverted  # the failure is the missed rescheduling, not the revert


class NoUncordon(KubeCluster):
    def uncordon(self, name: str) -> None:
        pass


def test_node_left_cordoned_fails(cluster: tuple[KubeApi, Path], tmp_path: Path) -> None:
    _, inv = cluster
    ev = drill(inv, tmp_path, "drain",
               adapter=NoUncordon(load_inventory(inv).kube("gpu-cluster")))
    assert ev.verdict is Verdict.FAIL
    assert not ev.reverted
    assert any("unschedulable=True" in s.message for s in ev.steps if s.name == "revert")


class NoScale(KubeCluster):
    def scale(self, kind: str, namespace: str, name: str, replicas: int) -> None:
        pass


def test_replicas_not_restored_fails(cluster: tuple[KubeApi, Path], tmp_path: Path) -> None:
    api, inv = cluster

    def scale_down(ctx: DrillContext, orig: Callable[[], None]) -> None:
        orig()
        with api.store.cond:  # a runbook that scaled the workload down and forgot it
            d: dict[str, Any] = api.store.get("deployments", "inference", "lab-mlp-predictor")
            api.store.replace("deployments", {**d, "spec": {**d["spec"], "replicas": 1}})

    ev = drill(inv, tmp_path, "noexecute", overrides={"service-ready": scale_down},
               adapter=NoScale(load_inventory(inv).kube("gpu-cluster")))
    assert ev.verdict is Verdict.FAIL
    assert any("replica count" in s.message for s in ev.steps if s.name == "revert")
