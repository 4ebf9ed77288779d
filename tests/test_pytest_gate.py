"""The pytest gate, pytest-in-pytest: drills declared as tests map PASS to passed, FAIL to failed
(with the missed objectives in the message) and INCONCLUSIVE to error; drills can be generated
per scenario x variant x asset and selected by tier; pytest-html rows carry each drill."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_evidence import INVENTORY

TESTS = '''
import pytest
from typing import ClassVar
from harness.errors import Inconclusive, StepFailed
from harness.model import RestorePoint, utc_now
from harness.scenario import RunbookStep, Scenario


class Scripted(Scenario):
    name: ClassVar[str] = "scripted"
    summary: ClassVar[str] = "scripted"
    variants: ClassVar[tuple[str, ...]] = ("only",)
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    preflight_error: ClassVar[Exception | None] = None
    restore_error: ClassVar[Exception | None] = None

    def preflight(self):
        if self.preflight_error:
            raise self.preflight_error

    def baseline(self): pass
    def inject(self): pass
    def detect(self): return True

    def runbook(self):
        def locate():
            self.ctx.findings.restore_point = RestorePoint("t", "x", utc_now(), "here")
        def restore():
            if self.restore_error:
                raise self.restore_error
            self.ctx.integrity("p/w.bin", "a" * 64, "a" * 64)
        return [RunbookStep("locate", locate), RunbookStep("restore", restore)]

    def verify(self): pass
    def revert(self): pass


@pytest.fixture
def drill_lease_resolver():
    from harness.lease import MemoryResolver
    return MemoryResolver()  # the site in these tests does not exist: nothing to exclude


class Broken(Scripted):
    restore_error = StepFailed("3 shards do not match the manifest")


class Unreachable(Scripted):
    preflight_error = Inconclusive("artifact store unreachable")


@pytest.mark.drill(scenario=Scripted)
def test_recovers(drill):
    """Weights come back within the RTO."""
    assert drill.verdict.value == "PASS"


@pytest.mark.drill(scenario=Broken)
def test_broken_recovery(drill):
    pass


@pytest.mark.drill(scenario=Unreachable)
def test_unreachable_store(drill):
    pass
'''


@pytest.fixture(autouse=True)
def entry_point_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make test` names its plugins and turns autoloading off; a site's pytest finds the
    drillbook plugin through its entry point, and so must the runs here."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)


@pytest.fixture
def site(pytester: pytest.Pytester) -> Path:
    inv = pytester.path / "site.yaml"
    inv.write_text(INVENTORY % ("60", ""))
    return inv


def test_verdicts_map_to_pass_fail_and_error(pytester: pytest.Pytester, site: Path) -> None:
    pytester.makepyfile(test_drills=TESTS)
    result = pytester.runpytest_inprocess(f"--drill-inventory={site}",
                                          f"--drill-evidence={pytester.path / 'ev'}", "-rfE")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    out = result.stdout.str()
    # FAIL names the missed objective and the report; INCONCLUSIVE errors with its reason
    assert re.search(r"missed objective: RTO: RTO not measured", out)
    assert "3 shards do not match the manifest" in out and "report.html" in out
    assert "DrillInconclusive: drill INCONCLUSIVE" in out and "store unreachable" in out
    assert "drillbook drills" in out  # the terminal summary lists each drill
    folders = sorted((pytester.path / "ev").glob("2*"))
    assert len(folders) == 3 and all((f / "SHA256SUMS").is_file() for f in folders)
    # the test's docstring is recorded as why the drill was chosen
    import json
    reasons = {json.loads((f / "evidence.json").read_text())["exercise"]["reason"]
               for f in folders}
    assert "Weights come back within the RTO." in reasons


def test_tier_marks_come_from_the_inventory(pytester: pytest.Pytester, site: Path) -> None:
    pytester.makepyfile(test_drills=TESTS)
    tier2 = pytester.runpytest_inprocess(f"--drill-inventory={site}", "-m", "tier2",
                                         f"--drill-evidence={pytester.path / 'ev'}")
    tier2.assert_outcomes(deselected=3)
    tier1 = pytester.runpytest_inprocess(f"--drill-inventory={site}", "-m", "tier1",
                                         f"--drill-evidence={pytester.path / 'ev'}")
    tier1.assert_outcomes(passed=1, failed=1, errors=1)


def test_no_inventory_is_an_error_not_a_skip(pytester: pytest.Pytester,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DRILLBOOK_INVENTORY", raising=False)
    pytester.makepyfile(test_drills=TESTS)
    result = pytester.runpytest_inprocess("-k", "recovers")
    result.assert_outcomes(errors=1)
    assert "--drill-inventory" in result.stdout.str()


def test_generated_drills_one_per_installed_scenario_and_asset(pytester: pytest.Pytester,
                                                               site: Path) -> None:
    pytester.makepyfile(test_site="def test_every_drill(drill_case):\n"
                                  "    assert drill_case.asset == 'w'\n")
    result = pytester.runpytest_inprocess(f"--drill-inventory={site}", "--collect-only", "-q",
                                          "-m", "tier1")
    out = result.stdout.str()
    # artifact-deletion fits the asset, in both its variants, marked tier1 from the inventory
    assert "test_every_drill[artifact-deletion-soft-w]" in out
    assert "test_every_drill[artifact-deletion-purge-w]" in out


def test_pytest_html_rows_carry_verdict_rto_rpo_and_a_report_link(pytester: pytest.Pytester,
                                                                  site: Path) -> None:
    import pytest_html  # noqa: F401 - a dev dependency: missing, this test errors (no skip)
    pytester.makepyfile(test_drills=TESTS)
    html_path = pytester.path / "out" / "pytest.html"
    result = pytester.runpytest_inprocess(f"--drill-inventory={site}",
                                          f"--drill-evidence={pytester.path / 'ev'}",
                                          f"--html={html_path}", "--self-contained-html")
    result.assert_outcomes(passed=1, failed=1, errors=1)
    import html as markup
    # pytest-html keeps its rows as JSON in an attribute: unescape both layers to read them
    text = markup.unescape(html_path.read_text()).replace('\\"', '"')
    assert "<th>RTO / RPO</th>" in text
    assert re.search(r'<td>PASS <a href="\.\./ev/2[^"]+/report\.html">report</a></td>', text)
    assert re.search(r'<td>FAIL <a href="\.\./ev/2[^"]+/report\.html">', text)
    assert re.search(r"<td>\d+\.\d\d s / \d+\.\d\d s</td>", text)


PARAM_TESTS = '''
import pytest
from typing import ClassVar
from harness.params import Param
from harness.model import RestorePoint, utc_now
from harness.scenario import RunbookStep, Scenario


class Tunable(Scenario):
    name: ClassVar[str] = "tunable"
    summary: ClassVar[str] = "tunable"
    variants: ClassVar[tuple[str, ...]] = ("only",)
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    params: ClassVar[tuple[Param, ...]] = (Param("shards", int, 1, maximum=4),)

    def preflight(self): pass
    def baseline(self): pass
    def inject(self): pass
    def detect(self): return True

    def runbook(self):
        def restore():
            self.ctx.findings.restore_point = RestorePoint("t", "x", utc_now(), "here")
            for i in range(self.ctx.params.as_int("shards")):
                self.ctx.integrity(f"p/{i}.bin", "a" * 64, "a" * 64)
        return [RunbookStep("restore", restore)]

    def verify(self): pass
    def revert(self): pass


@pytest.fixture
def drill_lease_resolver():
    from harness.lease import MemoryResolver
    return MemoryResolver()


@pytest.mark.drill(scenario=Tunable, params={"shards": 3})
def test_marker_params(drill):
    assert drill.audit.scope.params == {"shards": 3}
    assert len(drill.integrity) == 3


@pytest.mark.drill(scenario=Tunable, params={"shards": 9})
def test_bad_marker_params(drill):
    pass


@pytest.mark.drill(scenario=Tunable, asset="w", params={"colour": "red"})
def test_unknown_marker_params(drill):
    pass
'''


def test_marker_params_reach_the_scenario_and_bad_ones_error(pytester: pytest.Pytester,
                                                             site: Path) -> None:
    pytester.makepyfile(test_params=PARAM_TESTS)
    result = pytester.runpytest_inprocess(f"--drill-inventory={site}",
                                          f"--drill-evidence={pytester.path / 'ev'}", "-rE")
    result.assert_outcomes(passed=1, errors=2)
    out = result.stdout.str()
    assert "marker: shards: 9 is above the maximum 4" in out
    assert "has no parameter 'colour'" in out
    assert len(list((pytester.path / "ev").glob("2*"))) == 1  # bad params ran nothing
