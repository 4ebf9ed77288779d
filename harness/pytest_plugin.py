"""drillbook as a pytest plugin: drills run as tests, so a CI pipeline can gate a release on them.

Registered through the ``pytest11`` entry point (``drillbook``), so installing drillbook is
enough. This module holds the options, the markers, the outcome mapping and the pytest-html
columns; the fixtures live in :mod:`harness.pytest_fixtures` and the hook specs in
:mod:`harness.pytest_hooks`.

    pytest --drill-inventory site.yaml --drill-evidence evidence -m tier1

Every drill runs through a drill session (harness/session.py), like ``drillbook run``: the same
rule for which scenario fits which asset, the same parameters (the marker's ``params=`` beat the
inventory's ``drills:``), the same evidence writing and sealing.

Outcomes: PASS passes; FAIL fails with the missed objectives in the message (after the test
body, so a test may assert more); INCONCLUSIVE errors in setup (a check that could not run is
neither a pass nor a skip). A site declares its drills as tests in one of two ways::

    @pytest.mark.drill("artifact-deletion", variant="purge", asset="llm-weights",
                       params={"shards": 2})     # scenario parameters, if it declares any
    def test_weights_come_back_from_backup(drill):
        assert drill.restore_point is not None

    def test_every_drill(drill_case, drill):   # one test per scenario x variant x asset
        pass                                   # that fits the inventory, tier marks added
"""

from __future__ import annotations

import os
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.errors import UsageError
from harness.inventory import Inventory, load_inventory
from harness.model import Evidence, Verdict
from harness.pytest_fixtures import (
    DrillInconclusive,
    configured_inventory,
    drill,
    drill_adapters,
    drill_case,
    drill_evidence_root,
    drill_inventory,
    drill_inventory_path,
    drill_lab,
    drill_lease_resolver,
)
from harness.scenario import Scenario, discover, get_scenario, resolve
from harness.session import DrillSession, EvidenceWriter, fitting

__all__ = ["DrillInconclusive", "DrillSpec", "drill", "drill_adapters", "drill_case",
           "drill_evidence_root", "drill_inventory", "drill_inventory_path", "drill_lab",
           "drill_lease_resolver"]

MARKERS = (
    ("drill(scenario, variant=None, asset=None, params=None, overrides=None, reason=None): run "
     "this drill in the `drill` fixture; PASS passes, FAIL fails, INCONCLUSIVE errors"),
    "tier1: a drill of a tier-1 asset (added from the inventory)",
    "tier2: a drill of a tier-2 asset (added from the inventory)",
    "tier3: a drill of a tier-3 asset (added from the inventory)",
)

#: (evidence, folder) of the drill an item ran
EVIDENCE_KEY = pytest.StashKey[tuple[Evidence, Path]]()


@dataclass(frozen=True)
class DrillSpec:
    """Which drill a test runs."""

    scenario: str | type[Scenario]
    variant: str | None = None
    asset: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    #: scenario parameters (beaten by none: the command line has no say inside pytest)
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def scenario_class(self) -> type[Scenario]:
        return get_scenario(self.scenario) if isinstance(self.scenario, str) else self.scenario

    @property
    def id(self) -> str:
        name = self.scenario if isinstance(self.scenario, str) else self.scenario.name
        return "-".join(p for p in (name, self.variant, self.asset) if p)


# --- options and configuration ----------------------------------------------------------------------

def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from harness import pytest_hooks

    pluginmanager.add_hookspecs(pytest_hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("drillbook", "disaster-recovery drills (drillbook)")
    group.addoption("--drill-inventory", dest="drill_inventory", metavar="PATH", default=None,
                    help="site inventory the drills run against (default: ini drill_inventory, "
                         "else $DRILLBOOK_INVENTORY)")
    group.addoption("--drill-evidence", dest="drill_evidence", metavar="DIR", default="evidence",
                    help="where each drill's evidence folder is written (default: ./evidence)")
    group.addoption("--drill-signing-key", dest="drill_signing_key", metavar="PATH",
                    default=None, help="ed25519 key that signs each drill's evidence (default: "
                                       "$DRILLBOOK_SIGNING_KEY, else the inventory's)")
    parser.addini("drill_inventory", "site inventory the drills run against", default="")


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    _summary_lines.clear()
    # the pytest-html columns: only when its report is being written, never on an xdist worker
    # (the controller writes the report from the workers' serialised results)
    if config.pluginmanager.hasplugin("html") and getattr(config.option, "htmlpath", None) \
            and not hasattr(config, "workerinput"):
        config.pluginmanager.register(HtmlColumns(config), "drillbook-html")


# --- which drill an item runs -----------------------------------------------------------------------

def _spec_from_marker(marker: pytest.Mark) -> DrillSpec:
    kw = dict(marker.kwargs)
    # a Scenario class goes in as scenario=Cls: pytest.mark.x(SomeClass) would decorate the class
    scenario = marker.args[0] if marker.args else kw.pop("scenario", None)
    if scenario is None:
        raise UsageError("@pytest.mark.drill needs the scenario: @pytest.mark.drill('name') or "
                         "@pytest.mark.drill(scenario=MyScenario)")
    unknown = set(kw) - {"variant", "asset", "overrides", "reason", "params"}
    if unknown:
        raise UsageError(f"@pytest.mark.drill: unknown argument(s) {', '.join(sorted(unknown))}")
    params = kw.get("params") or {}
    if not isinstance(params, dict):
        raise UsageError("@pytest.mark.drill: params= must be a dict of name: value")
    return DrillSpec(scenario, kw.get("variant"), kw.get("asset"),
                     dict(kw.get("overrides") or {}), kw.get("reason"), dict(params))


def item_spec(item: pytest.Item) -> DrillSpec | None:
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "drill_case" in callspec.params:
        spec = callspec.params["drill_case"]
        assert isinstance(spec, DrillSpec)
        return spec
    marker = item.get_closest_marker("drill")
    return None if marker is None else _spec_from_marker(marker)


def drill_cases(inventory: Inventory, only: set[str] | None = None) -> list[tuple[DrillSpec, int]]:
    """Every (scenario, variant, asset) the one rule allows on the inventory
    (:meth:`Scenario.applies_to`), with the asset's tier; the variants are those of the
    implementation that drills the asset (a name may have one per platform)."""
    found = {n: c for n, c in discover().items() if only is None or n in only}
    return [(DrillSpec(name, variant, asset.id), asset.tier)
            for name, cls, asset in fitting(inventory, found) for variant in cls.variants]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "drill_case" not in metafunc.fixturenames:
        return
    path = configured_inventory(metafunc.config)
    if path is None:
        raise UsageError(f"{metafunc.definition.nodeid} asks for drill_case: give "
                         f"--drill-inventory PATH so its drills can be generated")
    inventory = load_inventory(path)
    marker = metafunc.definition.get_closest_marker("drill")
    only = {str(a) for a in marker.args} if marker is not None else None
    cases = drill_cases(inventory, only)
    if not cases:
        raise UsageError(f"no installed scenario fits an asset of {path}: no drill to generate")
    metafunc.parametrize("drill_case", [
        pytest.param(spec, id=spec.id, marks=[getattr(pytest.mark, f"tier{tier}")])
        for spec, tier in cases])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tier marks for marker-declared drills, from the inventory, before `-m` selects."""
    path = configured_inventory(config)
    if path is None:
        return
    inventory: Inventory | None = None
    for item in items:
        marker = item.get_closest_marker("drill")
        if marker is None or "drill_case" in getattr(getattr(item, "callspec", None),
                                                     "params", {}):
            continue
        inventory = inventory or load_inventory(path)
        spec = _spec_from_marker(marker)
        tier = resolve(inventory, spec.scenario_class, spec.asset, spec.variant)[1].tier
        if item.get_closest_marker(f"tier{tier}") is None:
            item.add_marker(getattr(pytest.mark, f"tier{tier}"))


# --- running the drill and mapping its verdict ------------------------------------------------------

def run_item_drill(request: pytest.FixtureRequest, inventory: Inventory, root: Path) -> Evidence:
    """Run the item's drill through a drill session (harness/session.py), which writes and
    seals its evidence, and remember it on the item."""
    from harness.provenance import ExerciseInput

    item = request.node
    spec = item_spec(item)
    if spec is None:
        raise UsageError(f"{item.nodeid} uses the drill fixture without @pytest.mark.drill(...) "
                         f"or drill_case")
    fn = getattr(item, "function", None)
    doc = (fn.__doc__ or "") if fn is not None else ""
    reason = spec.reason or (doc.strip().splitlines()[0] if doc.strip() else None)
    exercise = ExerciseInput(title=f"pytest {item.nodeid}", reason=reason)
    writer = EvidenceWriter.for_site(inventory, request.config.getoption("drill_signing_key"))
    session = DrillSession(inventory, root, sink=writer, progress=lambda m: None,
                           lease_resolver=request.getfixturevalue("drill_lease_resolver"))
    plan = session.plan(spec.scenario_class, asset=spec.asset, variant=spec.variant,
                        marker_params=spec.params)
    result = session.run(plan, exercise=exercise, overrides=spec.overrides)
    written = result.written
    assert written is not None  # the writer is the sink: it ran before run_drill returned
    ev = result.evidence
    item.stash[EVIDENCE_KEY] = (ev, result.directory)
    item.user_properties += [
        ("drill_id", ev.drill_id), ("drill_verdict", ev.verdict.value),
        ("drill_rto_s", ev.rto.measured_s), ("drill_rto_target_s", ev.rto.target_s),
        ("drill_rpo_s", ev.rpo.measured_s), ("drill_rpo_target_s", ev.rpo.target_s),
        ("drill_report", str(written["html"])), ("drill_signed", written.signed)]
    request.config.hook.pytest_drill_evidence(item=item, evidence=ev, directory=result.directory)
    if result.interrupted:
        raise KeyboardInterrupt  # Ctrl-C during the drill: revert ran; stop the session too
    return ev


def failure_message(ev: Evidence, directory: Path) -> str:
    from reports.objectives import objective_results

    missed = [f"{r.name}: {r.message}" for r in objective_results(ev.to_json())
              if r.status == "FAIL" and r.name != "verdict"]
    lines = [f"drill FAIL ({ev.scenario}/{ev.variant} on {ev.asset})"]
    lines += [f"  missed objective: {m}" for m in missed]
    lines += [f"  reason: {r}" for r in ev.reasons]
    lines.append(f"  report: {directory / 'report.html'}")
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    result = yield
    ran = item.stash.get(EVIDENCE_KEY, None)
    if ran is not None and ran[0].verdict is Verdict.FAIL:
        pytest.fail(failure_message(*ran), pytrace=False)
    return result


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    props = dict(report.user_properties)
    if "drill_verdict" not in props or report.when != "teardown":
        return
    line = (f"{props['drill_verdict']:12} RTO {_s(props.get('drill_rto_s'))} "
            f"(target {_s(props.get('drill_rto_target_s'))})  RPO {_s(props.get('drill_rpo_s'))} "
            f"(target {_s(props.get('drill_rpo_target_s'))})  {report.nodeid}\n"
            f"{'':12} {props.get('drill_report')}")
    _summary_lines.append(line)


#: one line per drill for the terminal summary, gathered from reports (so it works under xdist,
#: where the controller only sees the workers' reports)
_summary_lines: list[str] = []


def _s(value: object) -> str:
    return "not measured" if value is None else f"{float(str(value)):.2f} s"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _summary_lines:
        return
    terminalreporter.section("drillbook drills")
    for line in _summary_lines:
        terminalreporter.write_line(line)
    _summary_lines.clear()


# --- pytest-html ------------------------------------------------------------------------------------

class HtmlColumns:
    """Verdict, RTO/RPO and a link to each drill's report in pytest-html's results table."""

    def __init__(self, config: pytest.Config) -> None:
        self.report_dir = Path(str(config.option.htmlpath)).resolve().parent

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells.insert(2, "<th>Drill</th>")
        cells.insert(3, "<th>RTO / RPO</th>")

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        from markupsafe import escape

        props = dict(report.user_properties)
        if "drill_verdict" not in props:
            cells.insert(2, "<td></td>")
            cells.insert(3, "<td></td>")
            return
        href = os.path.relpath(str(props["drill_report"]), self.report_dir)
        cells.insert(2, f'<td>{escape(str(props["drill_verdict"]))} '
                        f'<a href="{escape(href)}">report</a></td>')
        cells.insert(3, f"<td>{escape(_s(props.get('drill_rto_s')))} / "
                        f"{escape(_s(props.get('drill_rpo_s')))}</td>")
