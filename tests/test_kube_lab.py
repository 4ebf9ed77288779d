"""The kube drills on the lab (`lab up`'s cluster: pods are real model servers) under locust
load, through the inventory the lab writes (target kind ``kubernetes``), with the SLO gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.inventory import load_inventory
from harness.model import Verdict
from harness.runner import DrillRequest, run_drill
from harness.scenario import Scenario
from lab.kubelab import ASSET
from lab.stack import Lab
from scenarios.kube_node_loss import KubeGpuNodeLoss
from scenarios.kube_site_loss import KubeInferenceSiteLoss

pytestmark = pytest.mark.lab


def _drill(lab: Lab, tmp_path: Path, cls: type[Scenario], variant: str) -> object:
    inv = load_inventory(lab.inventory_path)
    assert inv.targets["lab-cluster"].kind == "kube"  # written as kind: kubernetes
    ev = run_drill(inv, DrillRequest(cls, variant, ASSET, tmp_path / "ev"),
                   progress=print).evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    load = ev.sections["load"]
    assert load["slo"]["met"] and load["inference_rto_s"] is not None
    assert load["baseline"]["requests"] > 0 and load["acceptance"]["requests"] > 0
    kube = ev.sections["kube"]
    kept = [p for p in kube["pods"] if "deleted_s" not in p]
    assert kept and all(p["ready_s"] >= p["rescheduled_s"] > 0 for p in kept)
    assert ev.smoke["identical_outputs"] == ev.smoke["golden_inputs"]
    assert ev.reverted
    return ev


@pytest.mark.parametrize("variant", ["drain", "noexecute", "notready", "gpu-fault"])
def test_kube_gpu_node_loss_under_load(lab: Lab, tmp_path: Path, variant: str) -> None:
    ev = _drill(lab, tmp_path, KubeGpuNodeLoss, variant)
    kube = ev.sections["kube"]  # type: ignore[attr-defined]
    assert len(kube["lost"]) == 1
    if variant == "notready":  # the lab's pods tolerate an unreachable node for 5 s
        assert min(kube["lost_s"].values()) >= 5.0
    if variant == "gpu-fault":
        assert kube["gpu_fault"]["simulated"] is True


@pytest.mark.parametrize("variant", ["noexecute"])
def test_kube_site_loss_degrades_to_the_cpu_fallback(lab: Lab, tmp_path: Path,
                                                    variant: str) -> None:
    ev = _drill(lab, tmp_path, KubeInferenceSiteLoss, variant)
    marks = ev.sections["load"]["marks"]  # type: ignore[attr-defined]
    assert marks["degraded_s"] is not None and marks["degraded_s"] <= marks["recovered_s"]
    assert any(s.name == "confirm-fallback" and s.outcome.value == "ok"
               for s in ev.steps)  # type: ignore[attr-defined]
