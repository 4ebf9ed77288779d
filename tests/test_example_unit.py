"""The README's example scenario (examples/registry-alias) on in-memory fakes and a manual clock,
as the guide's reader would test their own: a correct recovery PASSes, a sabotaged one FAILs with
the alias put back by revert, a missing precondition is INCONCLUSIVE with nothing moved, and an
exception in the runbook still reverts. The lab test (tests/test_example_lab.py) installs and runs
the same module through its entry point."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from scenario_kit import (  # noqa: F401 - provenance_once is an autouse fixture
    START,
    provenance_once,
    raises,
    skip,
    step_names,
    unit_inventory,
)

from harness.fakes.database import FakeDatabase
from harness.fakes.registry import FakeRegistry
from harness.inventory import Inventory
from harness.journal import ManualClock
from harness.lease import MemoryResolver
from harness.model import Evidence, Verdict
from harness.params import ParamValues
from harness.runner import DrillRequest, StepOverride, run_drill

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "registry-alias"))
from drillbook_registry_alias import RegistryAliasDrift

ASSET = "lab-mlp-registry"


class Site:
    def __init__(self, root: Path, versions: tuple[str, ...] = ("1", "2")) -> None:
        self.root = root
        self.clock = ManualClock(START)
        self.inventory: Inventory = unit_inventory(root)
        self.pg = FakeDatabase("postgres", self.clock)
        self.pg.create_database("mlflow", "mlflow", {"registered_models": {},
                                                     "model_versions": {}, "metrics": {}})
        self.registry = FakeRegistry(self.inventory.mlflow("mlflow"), self.pg, "mlflow")
        self.registry.add_model("lab-mlp", 1000, aliases={"champion": "2"})
        for v in versions:
            self.registry.add_version("lab-mlp", v, 1000 * int(v))

    def alias(self, name: str = "champion") -> str | None:
        return self.registry.registered_models()[0].aliases.get(name)

    def drill(self, overrides: dict[str, StepOverride] | None = None,
              **params: str) -> Evidence:
        values = ParamValues(dict(params), {k: "command line" for k in params})
        req = DrillRequest(RegistryAliasDrift, "wrong-version", ASSET, self.root / "ev",
                           params=values)
        return run_drill(self.inventory, req, adapters={"mlflow": self.registry},
                         overrides=overrides, clock=self.clock, progress=lambda m: None,
                         lease_resolver=MemoryResolver()).evidence


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def test_the_alias_pointed_back_passes(site: Site) -> None:
    ev = site.drill()
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert step_names(ev) == ["repoint-alias"]
    assert ev.restore_point is not None and ev.restore_point.identity == "2"
    assert ev.smoke.to_json().get("summary") == "alias -> version 2"
    assert ev.rto.measured_s is not None and ev.rto.met is True
    assert ev.reverted and site.alias() == "2"
    assert ev.audit.scope.params == {"model": "lab-mlp", "alias": "champion"}


def test_a_recovery_that_never_repoints_fails_and_revert_puts_it_back(site: Site) -> None:
    seen: list[str | None] = []

    def look(ctx: object, original: object) -> None:  # sabotage, noting what the fault left
        seen.append(site.alias())

    ev = site.drill({"repoint-alias": look})
    assert seen == ["1"]  # the fault was real while the runbook ran
    assert ev.verdict is Verdict.FAIL, ev.reasons
    assert ev.smoke.to_json().get("summary") == "alias -> version 1"
    assert ev.rto.measured_s is None  # not verified restored: no RTO
    assert ev.reverted and site.alias() == "2"


def test_an_alias_that_is_not_set_is_inconclusive_and_moves_nothing(site: Site) -> None:
    before = site.registry.view()
    ev = site.drill(alias="canary")
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("the alias is not set" in r for r in ev.reasons), ev.reasons
    assert not any(t.event == "fault.injected" for t in ev.timeline)
    assert site.registry.view() == before


def test_a_model_with_one_version_is_inconclusive_and_left_as_found(tmp_path: Path) -> None:
    site = Site(tmp_path, versions=("2",))
    ev = site.drill()
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("one version" in r for r in ev.reasons), ev.reasons
    assert ev.reverted and site.alias() == "2"


def test_an_exception_in_the_runbook_still_reverts(site: Site) -> None:
    ev = site.drill({"repoint-alias": raises(RuntimeError("registry connection reset"))})
    assert ev.verdict is Verdict.FAIL
    assert any("connection reset" in r for r in ev.reasons), ev.reasons
    assert ev.reverted and site.alias() == "2"


def test_a_registry_that_cannot_be_read_is_inconclusive(site: Site) -> None:
    site.registry.running = False
    ev = site.drill()
    site.registry.running = True
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("unreachable" in r for r in ev.reasons), ev.reasons
    assert site.alias() == "2"
