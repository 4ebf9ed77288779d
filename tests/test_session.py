"""The drill session without a lab: one rule for which scenario fits which asset
(Scenario.applies_to), scenario parameters (parsing, validation, precedence command line >
marker > inventory > default, located inventory errors, evidence), the evidence sink, random
Tier 1 and ``drillbook run --param`` all going through it. A scripted scenario on a manual clock
with leases in memory: nothing real is touched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pytest

from harness import cli, lease, session
from harness.errors import InventoryError, UsageError
from harness.inventory import Asset, Inventory, load_inventory
from harness.journal import ManualClock
from harness.lease import MemoryResolver
from harness.model import RestorePoint, Verdict
from harness.params import Given, Param, ParamError, ParamValues, resolve, split_assignments
from harness.runner import DrillRequest, run_drill
from harness.scenario import RunbookStep, Scenario, why_not
from harness.session import DrillSession, EvidenceWriter, fitting
from reports.validate import schema_errors
from scenarios.random_tier1 import choose, run_random_tier1

SITE = """\
version: 1
site: unit-site
targets:
  store: {kind: s3, endpoint: "http://127.0.0.1:9", access_key: AK, secret_key: SK,
          drill_safe: true}
assets:
  - id: w
    tier: 1
    kind: model-weights
    store: store
    bucket: b
    prefix: w/
%s
  - {id: w2, tier: 2, kind: model-weights, store: store, bucket: b, prefix: w2/}
  - {id: cfg, tier: 1, kind: pipeline-config, store: store, bucket: b, prefix: cfg/}
objectives:
  tiers: {1: {rto_s: 60, rpo_s: 3600}, 2: {rto_s: 60, rpo_s: 3600}}
probe: {interval_s: 0.01, detect_timeout_s: 0.2}
"""
DRILLS = """\
    drills:
      tunable:
        params:
          shards: 3
          mode: hard
"""


class Tunable(Scenario):
    """A scripted drill that declares parameters and records what it was given."""

    name: ClassVar[str] = "tunable"
    summary: ClassVar[str] = "scripted drill with parameters"
    variants: ClassVar[tuple[str, ...]] = ("only", "other")
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    tiers: ClassVar[tuple[int, ...]] = (1,)
    params: ClassVar[tuple[Param, ...]] = (
        Param("shards", int, 2, minimum=1, maximum=8, help="how many shards to break"),
        Param("mode", str, "soft", choices=("soft", "hard")),
        Param("ratio", float, 0.5, minimum=0, maximum=1),
        Param("check", bool, True),
    )
    seen: ClassVar[list[tuple[int, str, float, bool]]] = []
    sabotage: ClassVar[bool] = False

    def preflight(self) -> None:
        p = self.ctx.params
        self.seen.append((p.as_int("shards"), p.as_str("mode"), p.as_float("ratio"),
                          p.as_bool("check")))

    def baseline(self) -> None:
        pass

    def inject(self) -> None:
        pass

    def detect(self) -> bool:
        return True

    def runbook(self) -> list[RunbookStep]:
        def restore() -> None:
            self.ctx.findings.restore_point = RestorePoint("test", "s1", self.ctx.clock.utc(),
                                                           "here")
            ok = "a" * 64
            self.ctx.integrity("w/x.bin", ok, "b" * 64 if self.sabotage else ok)
        return [RunbookStep("restore", restore)]

    def verify(self) -> None:
        pass

    def revert(self) -> None:
        pass


class NeedsBackup(Tunable):
    name: ClassVar[str] = "needs-backup"
    params: ClassVar[tuple[Param, ...]] = ()

    @classmethod
    def applies_to(cls, inventory: Inventory, asset: Asset) -> bool:
        """The asset needs a backup repository."""
        return super().applies_to(inventory, asset) and asset.backup is not None


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    path = tmp_path / "site.yaml"
    path.write_text(SITE % DRILLS)
    return load_inventory(path)


@pytest.fixture
def drills(tmp_path: Path, inventory: Inventory) -> DrillSession:
    Tunable.seen = []
    return DrillSession(inventory, tmp_path / "ev", sink=EvidenceWriter(),
                        progress=lambda m: None, clock=ManualClock(),
                        lease_resolver=MemoryResolver())


# -- the session -------------------------------------------------------------------------------

def test_a_drill_runs_and_its_evidence_is_written_sealed_and_holds_the_params(
        drills: DrillSession) -> None:
    result = drills.run_one(Tunable, asset="w")
    assert result.evidence.verdict is Verdict.PASS, result.evidence.reasons
    assert result.written is not None and result.written.paths["json"].is_file()
    assert (result.directory / "SHA256SUMS").is_file()
    doc = json.loads(result.written.paths["json"].read_text())
    assert schema_errors(doc) == []
    assert doc["scope"]["params"] == {"shards": 3, "mode": "hard", "ratio": 0.5, "check": True}
    lines = (result.directory / "journal.jsonl").read_text().splitlines()
    note = next(json.loads(x) for x in lines if json.loads(x)["type"] == "drill")
    assert note["params"] == doc["scope"]["params"]
    assert note["param_sources"] == {"shards": "inventory", "mode": "inventory",
                                     "ratio": "default", "check": "default"}


def test_a_sabotaged_recovery_fails_through_the_session(drills: DrillSession) -> None:
    cls = type("Sabotaged", (Tunable,), {"sabotage": True})
    result = drills.run_one(cls, asset="w")
    assert result.evidence.verdict is Verdict.FAIL
    assert result.written is not None and result.written.paths["html"].is_file()


def test_the_only_asset_that_fits_is_chosen_else_the_user_is_asked(
        drills: DrillSession) -> None:
    assert drills.plan(Tunable).asset.id == "w"  # w2 is tier 2, cfg another kind
    loose = type("Loose", (Tunable,), {"tiers": (1, 2)})
    with pytest.raises(UsageError, match=r"give the asset .*2 assets .* fit tunable \(w, w2\)"):
        drills.plan(loose)


def test_annotate_changes_the_sealed_evidence(drills: DrillSession) -> None:
    def mark(ev: Any) -> Any:
        return ev.replace(sections={**ev.sections, "note": {"by": "test"}})

    result = drills.run(drills.plan(Tunable), annotate=mark)
    assert result.evidence.sections["note"].to_json() == {"by": "test"}
    doc = json.loads((result.directory / "evidence.json").read_text())
    assert doc["sections"]["note"] == {"by": "test"}


# -- one rule: Scenario.applies_to -----------------------------------------------------------

@pytest.mark.parametrize("scenario, asset, reason", [
    (Tunable, "cfg", (r"applies to assets of kind model-weights, not to asset 'cfg' of kind "
                     r"'pipeline-config'")),
    (Tunable, "w2", r"applies to tier 1 assets, not to asset 'w2' of tier 2"),
    (NeedsBackup, "w", (r"does not apply to asset 'w' by its own rule "
                       r"\(NeedsBackup.applies_to\): The asset needs a backup repository")),
])
def test_a_scenario_that_does_not_apply_is_a_usage_error_saying_why(
        drills: DrillSession, scenario: type[Scenario], asset: str, reason: str) -> None:
    with pytest.raises(UsageError, match=reason):
        drills.plan(scenario, asset=asset)
    # the engine asks the same rule when called directly
    with pytest.raises(UsageError, match=reason):
        run_drill(drills.inventory, DrillRequest(scenario, "only", asset, Path("/nonexistent")))


def test_fitting_and_random_tier1_use_the_same_rule(inventory: Inventory) -> None:
    found = {"tunable": Tunable, "needs-backup": NeedsBackup}
    assert [(n, a.id) for n, _, a in fitting(inventory, found)] == [("tunable", "w")]
    assert why_not(Tunable, inventory, inventory.assets["w"]) is None
    picks = {choose(inventory, seed, found) for seed in range(20)}
    assert {(p.scenario, p.asset) for p in picks} == {("tunable", "w")}


def test_random_tier1_runs_through_the_session_and_records_its_selection(
        drills: DrillSession) -> None:
    sel, result = run_random_tier1(drills, seed=7, scenarios={"tunable": Tunable})
    assert (sel.scenario, sel.asset, sel.seed) == ("tunable", "w", 7)
    doc = json.loads((result.directory / "evidence.json").read_text())
    assert doc["sections"]["selection"]["seed"] == 7
    assert doc["scope"]["params"]["shards"] == 3  # the inventory's parameters apply


# -- parameters ------------------------------------------------------------------------------

def test_precedence_command_line_then_marker_then_inventory_then_default(
        drills: DrillSession) -> None:
    plan = drills.plan(Tunable, cli_params={"shards": "5"}, marker_params={"shards": 4,
                                                                          "ratio": 0.25})
    assert plan.params.values == {"shards": 5, "mode": "hard", "ratio": 0.25, "check": True}
    assert plan.params.sources == {"shards": "command line", "mode": "inventory",
                                   "ratio": "marker", "check": "default"}
    drills.run(plan)
    assert Tunable.seen == [(5, "hard", 0.25, True)]


@pytest.mark.parametrize("cli_params, marker, message", [
    ({"shards": "x"}, {}, r"command line: shards: 'x' is not a whole number"),
    ({"shards": "9"}, {}, r"shards: 9 is above the maximum 8"),
    ({"mode": "medium"}, {}, r"'medium' is not one of 'soft', 'hard'"),
    ({"check": "maybe"}, {}, r"check: 'maybe' is not true or false"),
    ({"nope": "1"}, {}, r"has no parameter 'nope' \(parameters: shards, mode, ratio, check\)"),
    ({}, {"shards": "3"}, r"marker: shards: must be a whole number \(got str '3'\)"),
    ({}, {"check": 1}, r"marker: check: must be true or false"),
    ({}, {"ratio": float("nan")}, r"ratio: must be a finite number"),
])
def test_bad_values_are_usage_errors_naming_their_source(
        drills: DrillSession, cli_params: dict[str, str], marker: dict[str, object],
        message: str) -> None:
    with pytest.raises(UsageError, match=message):
        drills.plan(Tunable, cli_params=cli_params, marker_params=marker)


def test_a_bad_inventory_value_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE % DRILLS.replace("shards: 3", "shards: three"))
    inv = load_inventory(path)  # the shape is right; the scenario's declaration decides
    drills = DrillSession(inv, tmp_path / "ev")
    with pytest.raises(InventoryError) as info:
        drills.plan(Tunable)
    line = path.read_text().splitlines().index("          shards: three") + 1
    assert (info.value.file, info.value.line) == (path, line)
    assert info.value.field == "assets[0].drills.tunable.params.shards"
    assert "must be a whole number" in info.value.message
    # the command line beats the bad value, so it is never read
    assert drills.plan(Tunable, cli_params={"shards": "1"}).params.as_int("shards") == 1


@pytest.mark.parametrize("drills_text, field", [
    ("    drills: {tunable: {params: {shards: [1, 2]}}}\n", "assets[0].drills.tunable.params.shards"),
    ("    drills: {tunable: {parms: {shards: 1}}}\n", "assets[0].drills.tunable.parms"),
    ("    drills: {'bad name': {params: {}}}\n", "assets[0].drills"),
    ("    drills: [tunable]\n", "assets[0].drills"),
    ("    drills: {tunable: {params: {x: .nan}}}\n", "assets[0].drills.tunable.params.x"),
])
def test_a_malformed_drills_field_fails_the_inventory_load(tmp_path: Path, drills_text: str,
                                                          field: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE % drills_text)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.field.startswith(field), info.value
    assert info.value.line == 13  # the drills: line of asset w


def test_a_required_parameter_must_be_given() -> None:
    with pytest.raises(ParamError, match=r"needs parameter alias \(str; required\)"):
        resolve([Param("alias", str)], [], scenario="scenario 'x'")
    got = resolve([Param("alias", str)], [Given("marker", {"alias": "champion"})])
    assert got.as_str("alias") == "champion" and got.sources == {"alias": "marker"}


def test_declarations_are_checked_when_the_scenario_is_defined() -> None:
    with pytest.raises(ParamError, match="must be a whole number"):
        Param("n", int, "2")
    with pytest.raises(ParamError, match="above the maximum"):
        Param("n", int, 9, maximum=8)
    with pytest.raises(TypeError):
        Param("n", list)  # type: ignore[arg-type]


def test_typed_accessors_refuse_the_wrong_type() -> None:
    values = ParamValues({"n": 3, "s": "x"}, {"n": "default", "s": "default"})
    assert values.as_int("n") == 3 and values.as_str("s") == "x"
    with pytest.raises(TypeError, match="'n' is int, not str"):
        values.as_str("n")
    with pytest.raises(KeyError, match="no parameter 'm'"):
        values.as_int("m")
    assert Param("r", float).check(2) == 2.0  # an int is a float's value too
    assert split_assignments(["a=1", "b=x=y", "a=2"]) == {"a": "2", "b": "x=y"}


# -- the command line ------------------------------------------------------------------------

@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, inventory: Inventory, tmp_path: Path,
            capsys: pytest.CaptureFixture[str]) -> Any:
    monkeypatch.setattr(session, "get_scenario", lambda name: Tunable)
    monkeypatch.setattr(lease, "LeaseResolver", lambda *args: MemoryResolver())
    monkeypatch.delenv("DRILLBOOK_SIGNING_KEY", raising=False)
    Tunable.seen = []

    def run(*args: str) -> tuple[int, str, str]:
        code = cli.main(["run", "tunable", "--inventory", str(inventory.path),
                         "--evidence-dir", str(tmp_path / "ev"), "--quiet", *args])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def test_cli_run_takes_params_and_prints_where_they_came_from(run_cli: Any) -> None:
    code, out, _ = run_cli("--param", "shards=6", "--param", "check=no")
    assert code == 0, out
    assert Tunable.seen == [(6, "hard", 0.5, False)]
    assert "params: shards=6 (command line), mode='hard' (inventory)" in out
    assert "verdict: PASS" in out and "evidence: " in out


@pytest.mark.parametrize("args, message", [
    (("--param", "shards=0"), "shards: 0 is below the minimum 1"),
    (("--param", "colour=red"), "has no parameter 'colour'"),
    (("--asset", "w2"), "applies to tier 1 assets, not to asset 'w2' of tier 2"),
    (("--asset", "cfg"), "not to asset 'cfg' of kind 'pipeline-config'"),
    (("--variant", "nope"), "has no variant 'nope'"),
])
def test_cli_run_refuses_before_anything_runs(run_cli: Any, tmp_path: Path,
                                              args: tuple[str, ...], message: str) -> None:
    code, _, err = run_cli(*args)
    assert code == 3 and message in err, err
    assert Tunable.seen == [] and not (tmp_path / "ev").exists()


def test_generated_pytest_cases_follow_the_same_rule(monkeypatch: pytest.MonkeyPatch,
                                                     inventory: Inventory) -> None:
    from harness import pytest_plugin

    found = {"tunable": Tunable, "needs-backup": NeedsBackup,
             "loose": type("Loose", (Tunable,), {"tiers": (1, 2)})}
    monkeypatch.setattr(pytest_plugin, "discover", lambda: found)
    cases = {(spec.id, tier) for spec, tier in pytest_plugin.drill_cases(inventory)}
    assert cases == {("tunable-only-w", 1), ("tunable-other-w", 1), ("loose-only-w", 1),
                     ("loose-other-w", 1), ("loose-only-w2", 2), ("loose-other-w2", 2)}


@pytest.mark.parametrize("name", ["credential-expiry", "storage-full", "replication-break"])
def test_scenarios_with_their_own_rule_still_apply_the_kind_rule(name: str) -> None:
    from types import SimpleNamespace

    from harness.scenario import get_scenario

    cls = get_scenario(name)
    wrong_kind = SimpleNamespace(kind="no-such-kind", tier=1)
    # the kind rule refuses before the scenario's own rule would look at the inventory
    assert cls.applies_to(None, wrong_kind) is False  # type: ignore[arg-type]
