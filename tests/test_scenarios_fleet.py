"""Lab-free unit tests of the fleet scenarios (gpu-node-loss, inference-site-loss) on an
in-memory fleet and a manual clock: no process, no locust, no sleep. A correct recovery passes
with a measured inference RTO; a replica never returned to rotation fails on the SLO gate;
corrupt weights in the store stop the drill before a node is broken; a replica that loaded
files other than the manifest's fails; an exception in the runbook still reverts the fleet."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from scenario_kit import (  # noqa: F401 - provenance_once is an autouse fixture
    START,
    drill,
    provenance_once,
    raises,
    skip,
    step_names,
    unit_inventory,
)

from harness.context import DrillContext
from harness.fakes.fleet import FakeFleet
from harness.fakes.store import FakeStore
from harness.integrity import MANIFEST_FORMAT
from harness.inventory import Inventory
from harness.journal import ManualClock
from harness.model import Evidence, Verdict
from scenarios.gpu_node_loss import GpuNodeLoss
from scenarios.inference_site_loss import InferenceSiteLoss

ASSET = "lab-mlp-service"
NODES = ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
WEIGHTS = {"model.safetensors": b"weights" * 100, "config.json": b"{}"}


def primary(rows: list[list[float]]) -> list[list[float]]:
    return [[round(2 * sum(r), 6)] for r in rows]


def fallback(rows: list[list[float]]) -> list[list[float]]:
    return [[round(sum(r), 6)] for r in rows]


@dataclass
class FleetSite:
    inventory: Inventory
    clock: ManualClock
    fleet: FakeFleet
    store: FakeStore
    root: Path

    @property
    def adapters(self) -> dict[str, object]:
        f = self.fleet
        return {"fleet-lb": f.balancer(), "fleet-orchestrator": f.orchestrator(),
                "fleet-frontend": f.frontend(self.inventory.inference("fleet-frontend")),
                "artifact-store": self.store, **{n: f.node(n) for n in NODES}}

    def run(self, cls: type, variant: str, overrides: dict[str, object] | None = None
            ) -> Evidence:
        return drill(self.inventory, cls, variant, ASSET, self.adapters, self.clock, self.root,
                     overrides)  # type: ignore[arg-type]

    def as_found(self) -> bool:
        view = self.fleet.orchestrator().view()
        return view.settled and all(s.up for s in self.fleet.balancer().servers().values())


@pytest.fixture
def site(tmp_path: Path) -> FleetSite:
    clock = ManualClock(START)
    inv = unit_inventory(tmp_path)
    a = inv.assets[ASSET]
    inputs = [[0.5, 1.0], [2.0, -1.0], [0.0, 0.25]]
    assert a.golden is not None and a.fallback_golden is not None
    a.golden.write_text(json.dumps({"inputs": inputs, "outputs": primary(inputs)}))
    a.fallback_golden.write_text(json.dumps({"inputs": inputs, "outputs": fallback(inputs)}))
    store = FakeStore(inv.s3("artifact-store"), now=clock.utc)
    store.create_bucket(a.bucket)
    files = {p: hashlib.sha256(b).hexdigest() for p, b in WEIGHTS.items()}
    for p, b in WEIGHTS.items():
        store.put_bytes(a.bucket, a.prefix + p, b)
    store.put_bytes(a.bucket, a.manifest_key, json.dumps({
        "format": MANIFEST_FORMAT, "model": "lab-mlp", "created_utc": START.isoformat(),
        "files": [{"path": p, "size": len(b), "sha256": files[p]} for p, b in WEIGHTS.items()]
    }).encode())
    fleet = FakeFleet(clock, nodes=NODES, primary=primary, fallback=fallback, files=files)
    return FleetSite(inv, clock, fleet, store, tmp_path)


def load(ev: Evidence) -> dict[str, object]:
    section: dict[str, object] = ev.sections["load"]
    return section


# -- gpu-node-loss ---------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["crash", "hang"])
def test_gpu_node_loss_passes_with_a_measured_inference_rto(site: FleetSite, variant: str) -> None:
    ev = site.run(GpuNodeLoss, variant)
    assert ev.verdict is Verdict.PASS, ev.reasons
    section = load(ev)
    rto = section["inference_rto_s"]
    assert isinstance(rto, float) and 0 < rto < ev.rto.target_s
    assert step_names(ev) == ["take-out-of-rotation", "await-reschedule", "smoke-test-replica",
                              "return-to-rotation"]
    assert ev.integrity and all(c.ok for c in ev.integrity)
    assert ev.restore_point is not None and ev.restore_point.kind == "bucket-version"
    assert any(t.event == "replica.rescheduled" for t in ev.timeline)
    assert ev.smoke["identical_outputs"] == ev.smoke["golden_inputs"] == 3
    assert ev.reverted and site.as_found()
    assert site.fleet.nodes == {n: "running" for n in NODES}


def test_gpu_node_loss_replica_never_returned_to_rotation_fails_on_the_slo_gate(
        site: FleetSite) -> None:
    ev = site.run(GpuNodeLoss, "crash", {"return-to-rotation": skip})
    assert ev.verdict is Verdict.FAIL
    assert any("acceptance run missed the SLO" in r and "throughput" in r
               for r in ev.reasons), ev.reasons
    assert load(ev)["inference_rto_s"] is None
    assert ev.reverted and site.as_found()


def test_gpu_node_loss_with_corrupt_weights_in_the_store_breaks_nothing(site: FleetSite) -> None:
    a = site.inventory.assets[ASSET]
    site.store.put_bytes(a.bucket, a.prefix + "model.safetensors", b"bit rot")
    ev = site.run(GpuNodeLoss, "crash")
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("do not match their manifest" in r for r in ev.reasons), ev.reasons
    assert not any(t.event == "fault.injected" for t in ev.timeline)
    assert site.fleet.nodes == {n: "running" for n in NODES}


def test_gpu_node_loss_replica_that_loaded_other_files_fails(site: FleetSite) -> None:
    site.fleet.corrupt_loads = {"model.safetensors": "0" * 64, "config.json": "1" * 64}
    ev = site.run(GpuNodeLoss, "crash")
    assert ev.verdict is Verdict.FAIL
    assert any("await-reschedule" in r and "do not match the store's manifest" in r
               for r in ev.reasons), ev.reasons
    site.fleet.corrupt_loads = None
    assert ev.reverted


def test_gpu_node_loss_exception_in_the_runbook_still_reverts(site: FleetSite) -> None:
    ev = site.run(GpuNodeLoss, "crash", {"await-reschedule": raises(RuntimeError("watch died"))})
    assert ev.verdict is Verdict.FAIL
    assert any("watch died" in r for r in ev.reasons), ev.reasons
    assert ev.reverted and site.as_found()
    assert any(t.event == "revert.node" for t in ev.timeline)


def test_gpu_node_loss_on_an_unsettled_fleet_is_inconclusive(site: FleetSite) -> None:
    site.fleet.node("gpu-node-2").crash()
    ev = site.run(GpuNodeLoss, "crash")
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("not settled" in r for r in ev.reasons), ev.reasons
    assert not any(t.event == "fault.injected" for t in ev.timeline)


# -- inference-site-loss -----------------------------------------------------------------------------


def _slow_rebuild(ctx: DrillContext, original: Callable[[], None]) -> None:
    """Not a sabotage: the degraded window must outlast the SLO's sustained window to be seen."""
    ctx.clock.sleep(ctx.inventory.slo.sustain_s + 3)
    original()


def test_site_loss_degrades_to_the_fallback_and_returns(site: FleetSite) -> None:
    ev = site.run(InferenceSiteLoss, "crash", {"rebuild-site": _slow_rebuild})
    assert ev.verdict is Verdict.PASS, ev.reasons
    marks = load(ev)["marks"]
    assert isinstance(marks, dict)
    assert marks["time_to_degraded_s"] is not None and marks["time_to_full_s"] is not None
    assert marks["time_to_degraded_s"] < marks["time_to_full_s"]
    assert any(t.event == "service.degraded" for t in ev.timeline)
    assert int(ev.smoke["fallback_sessions"] or 0) > 0
    assert step_names(ev)[0] == "confirm-fallback" and step_names(ev)[-1] == "switch-back"
    assert ev.reverted and site.as_found()


def test_site_loss_never_switched_back_fails_but_stays_degraded(site: FleetSite) -> None:
    ev = site.run(InferenceSiteLoss, "crash", {"rebuild-site": _slow_rebuild,
                                               "switch-back": skip})
    assert ev.verdict is Verdict.FAIL
    assert any("acceptance run missed the SLO" in r for r in ev.reasons), ev.reasons
    section = load(ev)
    assert section["inference_rto_s"] is None
    marks = section["marks"]
    assert isinstance(marks, dict) and marks["time_to_degraded_s"] is not None
    assert ev.reverted and site.as_found()


def test_site_loss_without_a_fallback_pool_is_inconclusive(site: FleetSite) -> None:
    site.fleet.backups = ()
    ev = site.run(InferenceSiteLoss, "crash")
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("no backup servers" in r for r in ev.reasons), ev.reasons
    assert site.fleet.nodes == {n: "running" for n in NODES}


def test_site_loss_exception_in_the_runbook_still_reverts(site: FleetSite) -> None:
    ev = site.run(InferenceSiteLoss, "crash", {"rebuild-site": raises(OSError("IPMI timeout"))})
    assert ev.verdict is Verdict.FAIL
    assert any("IPMI timeout" in r for r in ev.reasons), ev.reasons
    assert ev.reverted and site.as_found()
    assert site.fleet.nodes == {n: "running" for n in NODES}


@pytest.mark.parametrize(("cls", "variant"), [(GpuNodeLoss, "crash"), (InferenceSiteLoss, "crash")])
def test_fleet_without_weights_to_reload_is_inconclusive(site: FleetSite, cls: type,
                                                         variant: str) -> None:
    """The restore point of a fleet drill is the store's manifest a rescheduled replica loads."""
    a = site.inventory.assets[ASSET]
    site.store.delete(a.bucket, a.manifest_key)
    ev = site.run(cls, variant)
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("no manifest" in r for r in ev.reasons), ev.reasons
    assert not any(t.event == "fault.injected" for t in ev.timeline)
    assert site.as_found()
