"""Drill lifecycle hooks (harness/hooks.py): a site's plug-in sees the drill start, each phase,
each judged objective and the verdict; a plug-in that raises changes no verdict and is never
silent; a plug-in whose hooks do not match the specifications is refused when loaded. The drill
is the guide's example scenario on in-memory fakes (tests/test_example_unit.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest
from scenario_kit import provenance_once  # noqa: F401 - an autouse fixture
from test_example_unit import ASSET, RegistryAliasDrift, Site

from harness import hooks
from harness.hooks import hookimpl
from harness.lease import MemoryResolver
from harness.model import Evidence, ObjectiveResult, Verdict
from harness.runner import DrillRequest, run_drill


class Watcher:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    @hookimpl
    def drillbook_drill_started(self, drill_id: str, scenario: str, asset: str) -> None:
        self.seen.append(("started", (scenario, asset)))

    @hookimpl
    def drillbook_phase_started(self, phase: str) -> None:
        self.seen.append(("phase", phase))

    @hookimpl
    def drillbook_objective(self, objective: ObjectiveResult) -> None:
        self.seen.append(("objective", objective.name))

    @hookimpl
    def drillbook_verdict(self, evidence: Evidence) -> None:
        self.seen.append(("verdict", evidence.verdict))


class Broken:
    @hookimpl
    def drillbook_phase_started(self, phase: str) -> None:
        if phase == "runbook":
            raise RuntimeError("pager is down")

    @hookimpl
    def drillbook_verdict(self, evidence: Evidence) -> None:
        raise KeyError("ticket")


@pytest.fixture
def plugins() -> Iterator[list[object]]:
    registered: list[object] = []
    yield registered
    for p in registered:
        hooks.manager().unregister(p)


def register(plugins: list[object], plugin: object) -> None:
    hooks.manager().register(plugin)
    plugins.append(plugin)


def test_a_plugin_sees_the_drill_from_start_to_verdict(tmp_path: Path,
                                                       plugins: list[object]) -> None:
    watcher = Watcher()
    register(plugins, watcher)
    ev = Site(tmp_path).drill()
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert watcher.seen[0] == ("started", ("registry-alias-drift", "lab-mlp-registry"))
    phases = [x for kind, x in watcher.seen if kind == "phase"]
    assert phases == ["preflight", "baseline", "inject", "detect", "runbook", "verify", "revert",
                      "evidence"]
    assert [x for kind, x in watcher.seen if kind == "objective"] == \
        [o.name for o in ev.objectives]
    assert watcher.seen[-1] == ("verdict", Verdict.PASS)


def test_a_plugin_that_raises_changes_no_verdict_and_is_said(tmp_path: Path,
                                                            plugins: list[object]) -> None:
    watcher = Watcher()
    register(plugins, Broken())
    register(plugins, watcher)
    site = Site(tmp_path)
    result = run_drill(site.inventory, DrillRequest(RegistryAliasDrift, "wrong-version", ASSET,
                                                    tmp_path / "ev"),
                       adapters={"mlflow": site.registry}, clock=site.clock,
                       progress=lambda m: None, lease_resolver=MemoryResolver())
    ev = result.evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    said = [f.summary for f in ev.audit.findings if f.severity == "deviation"]
    assert any("drillbook_phase_started raised RuntimeError: pager is down" in s
               for s in said), said
    assert ("verdict", Verdict.PASS) in watcher.seen  # the others were still called
    assert len(result.hook_errors) == 1 and "drillbook_verdict raised KeyError" in \
        result.hook_errors[0]
    journal = (result.directory / "journal.jsonl").read_text()
    assert "pager is down" in journal and '"hook": "drillbook_phase_started"' in journal


def test_a_plugin_with_an_unknown_hook_is_refused(plugins: list[object]) -> None:
    class Misspelled:
        @hookimpl
        def drillbook_verdcit(self, evidence: Evidence) -> None:
            pass

    register(plugins, Misspelled())
    with pytest.raises(pluggy.PluginValidationError, match="drillbook_verdcit"):
        hooks.manager().check_pending()


PLUGIN = """
from harness.hooks import hookimpl

SEEN = []


@hookimpl
def drillbook_verdict(evidence):
    SEEN.append(evidence.verdict)
"""


def test_plugins_are_found_through_their_entry_point_group(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """An installed distribution (its metadata written as pip would) declaring a module in the
    ``drillbook.hooks`` group is loaded and registered under its entry point's name."""
    site = tmp_path / "site"
    info = site / "site_pager-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: site-pager\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[drillbook.hooks]\npager = site_pager\n")
    (site / "site_pager.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(site))
    pm = hooks.build_manager()
    plugin = pm.get_plugin("pager")
    assert plugin is not None and plugin.__name__ == "site_pager"
    assert [i.plugin_name for i in pm.hook.drillbook_verdict.get_hookimpls()] == ["pager"]
