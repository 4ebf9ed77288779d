"""One scenario name, one implementation per platform (harness/scenario.py ``resolve``).

``gpu-node-loss`` drives node processes behind HAProxy on a bare-metal site and a Kubernetes
cluster through its API: two classes, two entry points, one name. These lab-free tests check
the rules every front-end goes through: the asset decides, then the variant, then which
implementations fit any asset of the inventory, and a choice still open is a usage error that
lists the candidates. Scripted stand-ins (one on model weights, one on pipeline configs) play
the two platforms; the installed scenarios are checked for their names and entry points.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar

import pytest

from harness import scenario as scenario_mod
from harness import session as session_mod
from harness.errors import UsageError
from harness.inventory import Inventory, load_inventory
from harness.journal import ManualClock
from harness.lease import MemoryResolver
from harness.model import RestorePoint, Verdict
from harness.runner import DrillRequest, run_drill
from harness.scenario import (
    RunbookStep,
    Scenario,
    ScenarioFamily,
    discover,
    get_scenario,
    implementation,
    implementations,
    members_of,
    resolve,
    why_not,
)
from harness.session import DrillSession, fitting
from scenarios.random_tier1 import choose

SITE = """\
version: 1
site: unit-site
targets:
  store: {kind: s3, endpoint: "http://127.0.0.1:9", access_key: AK, secret_key: SK,
          drill_safe: true}
assets:
  - {id: fleet-a, tier: 1, kind: model-weights, store: store, bucket: b, prefix: a/}
%s
objectives:
  tiers: {1: {rto_s: 60, rpo_s: 3600}}
probe: {interval_s: 0.01, detect_timeout_s: 0.2}
"""
CLUSTER_ASSET = "  - {id: cluster-a, tier: 1, kind: pipeline-config, store: store, bucket: b, " \
                "prefix: c/}"


class _Base(Scenario):
    """A scripted drill: nothing real is touched."""

    name: ClassVar[str] = "node-loss"
    summary: ClassVar[str] = "scripted"
    destructive: ClassVar[bool] = False

    def preflight(self) -> None:
        pass

    def baseline(self) -> None:
        pass

    def inject(self) -> None:
        pass

    def detect(self) -> bool:
        return True

    def runbook(self) -> list[RunbookStep]:
        def done() -> None:
            self.ctx.findings.restore_point = RestorePoint("test", "s", self.ctx.clock.utc(),
                                                           "here")
        return [RunbookStep("recover", done)]

    def verify(self) -> None:
        pass

    def revert(self) -> None:
        pass


class OnFleet(_Base):
    platform: ClassVar[str] = "process-fleet"
    variants: ClassVar[tuple[str, ...]] = ("crash", "hang")
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)


class OnCluster(_Base):
    platform: ClassVar[str] = "kubernetes"
    variants: ClassVar[tuple[str, ...]] = ("drain", "noexecute")
    asset_kinds: ClassVar[tuple[str, ...]] = ("pipeline-config",)


def _eps(monkeypatch: pytest.MonkeyPatch, pairs: dict[str, type[Scenario]]) -> None:
    """Install ``pairs`` (entry-point name: class) as the only drillbook scenarios."""
    here = {f"{c.__qualname__}": c for c in pairs.values()}
    eps = [EntryPoint(n, f"{__name__}:{c.__qualname__}", scenario_mod.ENTRY_POINT_GROUP)
           for n, c in pairs.items()]
    monkeypatch.setattr(scenario_mod, "entry_points", lambda group: eps)
    for qual, cls in here.items():
        assert globals()[qual] is cls


@pytest.fixture
def both(monkeypatch: pytest.MonkeyPatch) -> type[Scenario]:
    _eps(monkeypatch, {"node-loss": OnFleet, "node-loss@kubernetes": OnCluster})
    fam = get_scenario("node-loss")
    assert issubclass(fam, ScenarioFamily)
    return fam


def _inventory(tmp_path: Path, cluster: bool = True) -> Inventory:
    path = tmp_path / "site.yaml"
    path.write_text(SITE % (CLUSTER_ASSET if cluster else ""))
    return load_inventory(path)


# -- discovery ---------------------------------------------------------------------------------

def test_the_installed_cluster_drills_share_the_process_fleet_names() -> None:
    found = implementations()
    assert {c.platform for c in found["gpu-node-loss"]} == {"process-fleet", "kubernetes"}
    assert {c.platform for c in found["inference-site-loss"]} == {"process-fleet", "kubernetes"}
    assert not {"kube-gpu-node-loss", "kube-inference-site-loss"} & set(found)
    kube = next(c for c in found["gpu-node-loss"] if c.platform == "kubernetes")
    assert kube.variants == ("drain", "noexecute", "notready", "gpu-fault")
    assert kube.asset_kinds == ("kube-inference-service",)
    # a single-implementation scenario is its own class, as before
    assert discover()["artifact-deletion"].platform == "any"


def test_a_family_joins_its_members_and_cannot_be_run_itself(both: type[Scenario]) -> None:
    assert members_of(both) == (OnCluster, OnFleet)  # by platform
    assert both.variants == ("drain", "noexecute", "crash", "hang")
    assert set(both.asset_kinds) == {"model-weights", "pipeline-config"}
    with pytest.raises(TypeError):
        both(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("pairs, message", [
    ({"node-loss": OnFleet, "node-loss@kube": OnCluster},
     r"name it 'node-loss', or node-loss@kubernetes"),
    ({"something-else": OnFleet}, r"is scenario 'node-loss' on platform 'process-fleet'"),
    ({"node-loss": OnCluster, "node-loss@kubernetes": OnCluster},
     r"two implementations for platform 'kubernetes'"),
])
def test_entry_points_are_named_after_their_scenario_and_platform(
        monkeypatch: pytest.MonkeyPatch, pairs: dict[str, type[Scenario]], message: str) -> None:
    _eps(monkeypatch, pairs)
    with pytest.raises(UsageError, match=message):
        discover()


# -- resolution --------------------------------------------------------------------------------

def test_the_asset_chooses_the_implementation(both: type[Scenario], tmp_path: Path) -> None:
    inv = _inventory(tmp_path)
    assert resolve(inv, both, "cluster-a", None)[::2] == (OnCluster, "drain")
    impl, asset, variant = resolve(inv, both, "fleet-a", "hang")
    assert (impl, asset.id, variant) == (OnFleet, "fleet-a", "hang")


def test_the_variant_chooses_when_no_asset_is_given(both: type[Scenario], tmp_path: Path) -> None:
    inv = _inventory(tmp_path)
    impl, asset, _ = resolve(inv, both, None, "drain")  # drain exists only on the cluster
    assert (impl, asset.id) == (OnCluster, "cluster-a")
    assert resolve(inv, both, None, "crash")[1].id == "fleet-a"


def test_one_fitting_platform_in_the_inventory_chooses(both: type[Scenario],
                                                       tmp_path: Path) -> None:
    inv = _inventory(tmp_path, cluster=False)
    impl, asset, variant = resolve(inv, both, None, None)
    assert (impl, asset.id, variant) == (OnFleet, "fleet-a", "crash")


def test_still_ambiguous_is_a_usage_error_listing_the_candidates(both: type[Scenario],
                                                                 tmp_path: Path) -> None:
    inv = _inventory(tmp_path)
    with pytest.raises(UsageError) as info:
        resolve(inv, both, None, None)
    text = str(info.value)
    assert "give the asset (--asset" in text
    assert "kubernetes: assets cluster-a (variants drain, noexecute)" in text
    assert "process-fleet: assets fleet-a (variants crash, hang)" in text


@pytest.mark.parametrize("asset, variant, message", [
    ("fleet-a", "drain",
     r"has no variant 'drain' for asset 'fleet-a' \(variants: process-fleet: crash, hang\)"),
    (None, "reboot",
     r"no variant 'reboot' \(variants: kubernetes: drain, noexecute; process-fleet: crash, hang\)"),
    ("nope", None, r"asset 'nope' is not in"),
])
def test_impossible_requests_say_why(both: type[Scenario], tmp_path: Path, asset: str | None,
                                     variant: str | None, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        resolve(_inventory(tmp_path), both, asset, variant)


def test_no_implementation_for_the_asset_says_why_for_each_platform(
        both: type[Scenario], tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE % "  - {id: ds, tier: 1, kind: dataset, store: store, bucket: b, "
                           "prefix: d/}")
    inv = load_inventory(path)
    reason = why_not(both, inv, inv.assets["ds"])
    assert reason is not None and "no implementation of scenario 'node-loss'" in reason
    assert "on kubernetes, scenario 'node-loss' applies to assets of kind pipeline-config" in reason
    with pytest.raises(UsageError, match="on process-fleet, scenario 'node-loss' applies to"):
        resolve(inv, both, "ds", None)


# -- every front-end resolves the same way -----------------------------------------------------

def test_session_plan_fitting_pytest_cases_and_random_tier1_pick_per_asset(
        both: type[Scenario], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import pytest_plugin

    inv = _inventory(tmp_path)
    plan = DrillSession(inv, tmp_path / "ev").plan("node-loss", variant="noexecute")
    assert (plan.scenario, plan.asset.id, plan.variant) == (OnCluster, "cluster-a", "noexecute")
    assert [(n, c, a.id) for n, c, a in fitting(inv)] == [
        ("node-loss", OnCluster, "cluster-a"), ("node-loss", OnFleet, "fleet-a")]
    monkeypatch.setattr(pytest_plugin, "discover", discover)
    cases = {s.id for s, _ in pytest_plugin.drill_cases(inv)}
    assert cases == {"node-loss-drain-cluster-a", "node-loss-noexecute-cluster-a",
                     "node-loss-crash-fleet-a", "node-loss-hang-fleet-a"}
    for seed in range(12):
        sel = choose(inv, seed)
        impl = OnCluster if sel.asset == "cluster-a" else OnFleet
        assert sel.variant in impl.variants and sel.platform == impl.platform


def test_the_engine_resolves_and_the_evidence_names_the_platform(
        both: type[Scenario], tmp_path: Path) -> None:
    inv = _inventory(tmp_path)
    assert implementation(inv, both, "cluster-a", "drain") is OnCluster
    result = run_drill(inv, DrillRequest(both, "drain", "cluster-a", tmp_path / "ev"),
                       clock=ManualClock(), progress=lambda m: None,
                       lease_resolver=MemoryResolver())
    ev = result.evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert ev.scenario == "node-loss"
    impl: Any = ev.sections["implementation"].to_json()
    assert impl == {"scenario": "node-loss", "platform": "kubernetes",
                    "class": f"{__name__}:OnCluster"}
    assert ev.audit.runbook.module == __name__


def test_cli_run_without_asset_or_variant_lists_the_candidates(
        both: type[Scenario], tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from harness import cli

    inv = _inventory(tmp_path)
    monkeypatch.setattr(session_mod, "get_scenario", get_scenario)
    code = cli.main(["run", "node-loss", "--inventory", str(inv.path), "--evidence-dir",
                     str(tmp_path / "ev"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 3 and "give the asset" in err and "cluster-a" in err, err
    assert not (tmp_path / "ev").exists()
