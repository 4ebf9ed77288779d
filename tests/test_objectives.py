"""One objective list drives the verdict and every report (no lab, no network).

A scenario that records a missed SLO without calling ``ctx.fail`` gets a FAIL verdict and a
failing JUnit case; the renderers show exactly the evidence's objectives and never re-judge; a
deviation becomes a finding and is named beside "every objective met".
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, ClassVar

import pytest

from harness.errors import UsageError
from harness.inventory import load_inventory
from harness.lease import MemoryResolver
from harness.model import (
    Evidence,
    GenericSection,
    Objective,
    ObjectiveKind,
    RestorePoint,
    SmokeResult,
    Verdict,
    utc_now,
)
from harness.runner import DrillRequest, DrillResult, run_drill
from harness.scenario import RunbookStep, Scenario
from harness.verdict import Recorded, judge
from reports.junit import render_junit
from reports.markdown import render_markdown
from reports.objectives import objective_results
from reports.render import render_html, write_evidence

INVENTORY = """\
version: 1
site: unit
targets:
  store: {kind: s3, endpoint: "http://127.0.0.1:9", access_key: a, secret_key: b, drill_safe: true}
assets:
  - {id: w, tier: 1, kind: model-weights, store: store, bucket: b, prefix: p/}
objectives:
  tiers: {1: {rto_s: 60, rpo_s: 3600}}
probe: {interval_s: 0.01, detect_timeout_s: 0.2}
"""


class Recording(Scenario):
    """Recovers cleanly; what it records in verify is set by class attributes."""

    name: ClassVar[str] = "recording"
    summary: ClassVar[str] = "test double"
    variants: ClassVar[tuple[str, ...]] = ("only",)
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    blast_radius: ClassVar[str] = "nothing real"
    slo: ClassVar[dict[str, Any] | None] = None
    deviation: ClassVar[str | None] = None

    def preflight(self) -> None:
        pass

    def baseline(self) -> None:
        pass

    def inject(self) -> None:
        pass

    def detect(self) -> bool:
        return True

    def runbook(self) -> list[RunbookStep]:
        def locate() -> None:
            self.ctx.findings.restore_point = RestorePoint("test", "x", utc_now(), "here")
            if self.deviation:
                self.ctx.deviation(self.deviation)

        def restore() -> None:
            self.ctx.integrity("p/a", "a" * 64, "a" * 64)
        return [RunbookStep("locate", locate), RunbookStep("restore", restore)]

    def verify(self) -> None:
        self.ctx.findings.smoke.update({"golden_inputs": 2, "identical_outputs": 2})
        if self.slo is not None:
            # recorded, not ctx.fail'ed: the verdict must still see it
            self.ctx.findings.sections["load"] = {"slo": dict(self.slo)}

    def revert(self) -> None:
        pass


def drill(tmp_path: Path, **attrs: Any) -> tuple[DrillResult, dict[str, Any]]:
    p = tmp_path / "inv.yaml"
    p.write_text(INVENTORY)
    cls = type("R", (Recording,), attrs)
    result = run_drill(load_inventory(p), DrillRequest(cls, "only", "w", tmp_path / "ev"),
                       progress=lambda m: None, lease_resolver=MemoryResolver())
    write_evidence(result.evidence, result.directory, history=False)
    return result, json.loads((result.directory / "evidence.json").read_text())


def junit_cases(directory: Path) -> dict[str, str]:
    root = ET.parse(directory / "junit.xml").getroot()
    out = {}
    for case in root.iter("testcase"):
        tags = [c.tag for c in case if c.tag in ("failure", "error")]
        out[case.get("name", "")] = tags[0] if tags else "pass"
    return out


def test_a_recorded_missed_slo_fails_the_drill_and_junit_agrees(tmp_path: Path) -> None:
    result, doc = drill(tmp_path, slo={"met": False, "summary": "p95 900 ms > 500 ms"})
    ev = result.evidence
    assert ev.verdict is Verdict.FAIL
    assert any("slo:load" in r and "p95 900 ms" in r for r in ev.reasons), ev.reasons
    cases = junit_cases(result.directory)
    assert cases["slo:load"] == "failure" and cases["verdict"] == "failure"
    assert cases["RTO"] == "pass" and cases["RPO"] == "pass"
    slo = next(o for o in ev.objectives if o.name == "slo:load")
    assert slo.kind is ObjectiveKind.SLO and slo.status is Verdict.FAIL
    assert doc["verdict"] == "FAIL"
    assert "### ❌ DR drill FAIL" in (result.directory / "summary.md").read_text()
    assert any(f["severity"] == "fail" and "p95 900 ms" in f["summary"]
               for f in doc["findings"])


def test_an_slo_that_could_not_be_judged_is_never_a_pass(tmp_path: Path) -> None:
    result, _ = drill(tmp_path, slo={"met": None, "summary": "load generator did not start"})
    assert result.evidence.verdict is Verdict.INCONCLUSIVE
    assert junit_cases(result.directory)["slo:load"] == "error"
    assert "load generator did not start" in " ".join(result.evidence.reasons)


def test_a_met_slo_passes_with_every_case_green(tmp_path: Path) -> None:
    result, doc = drill(tmp_path, slo={"met": True, "summary": "p95 120 ms"})
    assert result.evidence.verdict is Verdict.PASS, result.evidence.reasons
    assert set(junit_cases(result.directory).values()) == {"pass"}
    assert [o["name"] for o in doc["objectives"]] == [
        "RTO", "RPO", "integrity", "smoke", "slo:load", "revert"]


def test_every_renderer_shows_the_evidence_objectives_and_does_not_rejudge(
        tmp_path: Path) -> None:
    _, doc = drill(tmp_path)
    # a host check judged elsewhere, and an objective whose status disagrees with its own
    # numbers: the renderers must show what the list says, not recompute it
    doc["objectives"].append({"name": "host:ntp-sync", "kind": "host-check", "status": "FAIL",
                              "message": "clock offset 3.2 s > 1 s", "measured_s": None,
                              "target_s": None})
    doc["objectives"][0]["status"] = "INCONCLUSIVE"
    doc["verdict"], doc["reasons"] = "FAIL", ["host:ntp-sync: clock offset 3.2 s > 1 s"]
    names = [r.name for r in objective_results(doc)]
    assert names[-2:] == ["host:ntp-sync", "verdict"]
    ev = Evidence.from_json(doc)
    root = ET.fromstring(render_junit(ev).split("\n", 1)[1])
    host = next(c for c in root.iter("testcase") if c.get("name") == "host:ntp-sync")
    rto = next(c for c in root.iter("testcase") if c.get("name") == "RTO")
    assert host.find("failure") is not None and rto.find("error") is not None
    md = render_markdown(ev)
    assert "| host:ntp-sync | ❌ FAIL | clock offset 3.2 s > 1 s |" in md
    html = render_html(ev)
    assert "host:ntp-sync" in html and "clock offset 3.2 s &gt; 1 s" in html


def test_evidence_without_an_objective_list_is_refused_not_rejudged(tmp_path: Path) -> None:
    _, doc = drill(tmp_path)
    del doc["objectives"]
    with pytest.raises(UsageError, match="no objectives list"):
        objective_results(doc)


def test_a_deviation_is_a_finding_and_is_named_beside_the_pass(tmp_path: Path) -> None:
    text = "newest backup abc is corrupt: not restored; RPO would have been 42.0 s"
    result, doc = drill(tmp_path, deviation=text)
    assert result.evidence.verdict is Verdict.PASS
    assert doc["deviations"][-1] == text
    dev = [f for f in doc["findings"] if f["severity"] == "deviation"]
    assert [f["summary"] for f in dev] == [text]
    verdict = objective_results(doc)[-1]
    assert verdict.status == "PASS" and "1 deviation" in verdict.message and text in verdict.message
    md = (result.directory / "summary.md").read_text()
    assert "**Deviations**" in md and text in md


def test_judge_puts_findings_first_then_own_misses() -> None:
    rec = Recorded(events=[], integrity=[], smoke=SmokeResult(), sections={"load": GenericSection(
        {"slo": {"met": False, "summary": "error rate 9 %"}})}, reverted=False,
        failures=["runbook step 'pull' failed: restic exit 1"], inconclusive=[])
    j = judge(Objective.evaluate(None, 60), Objective.evaluate(30.0, 10), rec)
    assert j.verdict is Verdict.FAIL
    assert j.reasons[0] == "runbook step 'pull' failed: restic exit 1"
    assert any(r.startswith("RPO") and "exceeds" in r for r in j.reasons)
    assert any("error rate 9 %" in r for r in j.reasons)
    # an RTO not measured because recovery failed is shown as failed, but is not a new reason
    rto = next(o for o in j.objectives if o.name == "RTO")
    assert rto.status is Verdict.FAIL and not any(r.startswith("RTO") for r in j.reasons)


def test_an_slo_the_scenario_already_failed_in_its_own_words_is_not_repeated() -> None:
    rec = Recorded(events=[], integrity=[], smoke=SmokeResult(), sections={"load": GenericSection(
        {"slo": {"met": False, "summary": "acceptance run missed the SLO: p95 900 ms > 500 ms"}})},
        reverted=True, failures=["acceptance run missed the SLO: p95 900 ms > 500 ms"],
        inconclusive=[])
    j = judge(Objective.evaluate(None, 60), Objective.evaluate(1.0, 10), rec)
    assert j.verdict is Verdict.FAIL
    assert j.reasons == ("acceptance run missed the SLO: p95 900 ms > 500 ms",)
