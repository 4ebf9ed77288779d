"""The service RTO beside the verified RTO (issue 13 item 4), without a lab.

The RTO objective is judged on the service RTO (fault until the service was back, proven by the
verification after it); the verified RTO and the verification's own time are shown beside it in
the evidence, the objective list, JUnit, Markdown, HTML and the history. Drills here run on a
:class:`~harness.journal.ManualClock`, so every figure is exact and no test sleeps.
"""

from __future__ import annotations

import json
import sqlite3
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from harness import history, provenance
from harness.inventory import load_inventory
from harness.journal import ManualClock
from harness.lease import MemoryResolver
from harness.model import (
    Event,
    Evidence,
    ObjectiveKind,
    Phase,
    RestorePoint,
    RtoDefinition,
    RtoError,
    Verdict,
    compute_rto,
    compute_service_rto,
    iso,
    measure_rto,
)
from harness.runner import DrillRequest, DrillResult, run_drill
from harness.scenario import RunbookStep, Scenario
from reports.junit import render_junit
from reports.markdown import render_markdown
from reports.render import render_html, write_evidence

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def ev(seq: int, name: str, mono: float, **detail: Any) -> Event:
    return Event(seq, name, Phase.VERIFY, T0 + timedelta(seconds=mono - 100.0), mono, detail)


def events(*named: tuple[str, float], **detail: Any) -> list[Event]:
    return [ev(i, n, m, **(detail if n == "service.recovered" else {}))
            for i, (n, m) in enumerate(named)]


# -- measuring, from events --------------------------------------------------------------------


def test_service_rto_ends_when_the_runbook_completed_and_verification_is_beside_it() -> None:
    m = measure_rto(events(("fault.injected", 100.0), ("recovery.completed", 130.0),
                           ("recovery.verified", 142.5)))
    assert (m.service_s, m.verified_s, m.verification_s) == (30.0, 42.5, 12.5)
    assert m.definition is RtoDefinition.RECOVERY_COMPLETED and m.error is None
    assert compute_rto(events(("fault.injected", 100.0), ("recovery.completed", 130.0),
                              ("recovery.verified", 142.5))) == 42.5  # the verified figure


def test_a_recorded_service_recovered_instant_ends_the_service_rto() -> None:
    # the fleet's case: the SLO held again 1 s after the fault, long before the runbook ended;
    # the instant was measured from load samples and journaled later with at_utc
    at = iso(T0 + timedelta(seconds=1.0))
    m = measure_rto(events(("fault.injected", 100.0), ("recovery.completed", 106.0),
                           ("service.recovered", 107.0), ("recovery.verified", 109.15),
                           at_utc=at))
    assert m.service_s == pytest.approx(1.0) and m.verified_s == pytest.approx(9.15)
    assert m.verification_s == pytest.approx(3.15)
    assert m.definition is RtoDefinition.SERVICE_RECOVERED


def test_the_fleet_scenarios_load_recovery_mark_is_read_as_the_service_instant() -> None:
    evs = events(("fault.injected", 100.0), ("recovery.completed", 105.0))
    evs += [ev(2, "load.recovery.measured", 107.0, since_t0_s=3.985),
            ev(3, "recovery.verified", 110.0)]
    assert compute_service_rto(evs) == pytest.approx(3.985)


def test_no_service_rto_when_the_verification_after_it_did_not_pass() -> None:
    m = measure_rto(events(("fault.injected", 100.0), ("recovery.completed", 130.0)))
    assert m.service_s is None and m.verified_s is None and m.error is None
    assert m.note is not None and "did not pass" in m.note
    assert measure_rto(events(("fault.injected", 100.0))).service_s is None
    assert measure_rto([]).service_s is None


@pytest.mark.parametrize("named, detail, why", [
    # the service "back" before the fault
    ((("fault.injected", 100.0), ("recovery.completed", 110.0), ("service.recovered", 111.0),
      ("recovery.verified", 112.0)), {"at_utc": iso(T0 - timedelta(seconds=5))},
     "before the fault"),
    # an instant later than the event that journaled it
    ((("fault.injected", 100.0), ("recovery.completed", 110.0), ("service.recovered", 111.0),
      ("recovery.verified", 112.0)), {"at_utc": iso(T0 + timedelta(seconds=30))},
     "not yet measured"),
    # back after the verification that proved it ended
    ((("fault.injected", 100.0), ("recovery.completed", 110.0), ("recovery.verified", 112.0),
      ("service.recovered", 115.0)), {}, "after the verification"),
    # verification ending before the runbook did
    ((("fault.injected", 100.0), ("recovery.verified", 105.0), ("recovery.completed", 110.0)),
     {}, "before recovery.completed"),
])
def test_an_impossible_figure_is_an_error_never_a_number(named: tuple[tuple[str, float], ...],
                                                         detail: dict[str, Any],
                                                         why: str) -> None:
    m = measure_rto(events(*named, **detail))
    assert m.service_s is None and m.error is not None and why in m.error
    with pytest.raises(RtoError, match=why):
        compute_service_rto(events(*named, **detail))


# -- judged on the service figure, in a drill --------------------------------------------------

INVENTORY = """\
version: 1
site: unit
targets:
  store: {kind: s3, endpoint: "http://127.0.0.1:9", access_key: a, secret_key: b, drill_safe: true}
assets:
  - {id: w, tier: 1, kind: model-weights, store: store, bucket: b, prefix: p/}
objectives:
  tiers: {1: {rto_s: %s, rpo_s: 3600}}
probe: {interval_s: 0.01, detect_timeout_s: 0.2}
"""


class Timed(Scenario):
    """The runbook takes ``runbook_s``; verification takes ``verify_s`` on the drill's clock.
    ``back_after_s`` records the service back that long after the fault (measured later)."""

    name: ClassVar[str] = "timed"
    summary: ClassVar[str] = "test double on a manual clock"
    variants: ClassVar[tuple[str, ...]] = ("only",)
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    blast_radius: ClassVar[str] = "nothing real"
    runbook_s: ClassVar[float] = 20.0
    verify_s: ClassVar[float] = 15.0
    back_after_s: ClassVar[float | None] = None
    verify_fails: ClassVar[bool] = False

    def preflight(self) -> None:
        pass

    def baseline(self) -> None:
        pass

    def inject(self) -> None:
        self.t0 = self.ctx.clock.utc()

    def detect(self) -> bool:
        return True

    def runbook(self) -> list[RunbookStep]:
        def restore() -> None:
            self.ctx.findings.restore_point = RestorePoint("test", "s1", self.ctx.clock.utc(), "x")
            self.ctx.clock.sleep(self.runbook_s)
            self.ctx.integrity("p/a", "a" * 64, "a" * 64)
        return [RunbookStep("restore", restore)]

    def verify(self) -> None:
        self.ctx.clock.sleep(self.verify_s)
        if self.back_after_s is not None:
            self.ctx.service_recovered(at=self.t0 + timedelta(seconds=self.back_after_s))
        self.ctx.findings.smoke.update({"golden_inputs": 2, "identical_outputs": 2})
        if self.verify_fails:
            self.ctx.fail("golden outputs differ")

    def revert(self) -> None:
        pass


@pytest.fixture(autouse=True)
def quick_provenance(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment fingerprint reads every installed package's metadata (seconds); these
    tests are about RTO, so it is replaced by a fixed one."""
    monkeypatch.setattr(provenance, "environment_fingerprint", lambda path: {
        "hostname": "unit", "os": "unit", "python": "3.11", "python_packages_sha256": "0" * 64,
        "inventory_sha256": "0" * 64})
    monkeypatch.setattr(provenance, "tool_versions", lambda: {"restic": "not installed"})


def drill(tmp_path: Path, *, rto: float = 60, **attrs: Any) -> DrillResult:
    inv_path = tmp_path / "inv.yaml"
    inv_path.write_text(INVENTORY % rto)
    cls = type("T", (Timed,), attrs)
    return run_drill(load_inventory(inv_path), DrillRequest(cls, "only", "w", tmp_path / "ev"),
                     progress=lambda m: None, lease_resolver=MemoryResolver(),
                     clock=ManualClock(T0))


def rto_result(e: Evidence) -> Any:
    return next(o for o in e.objectives if o.kind is ObjectiveKind.RTO)


def test_the_objective_is_judged_on_the_service_rto_with_the_verified_beside_it(
        tmp_path: Path) -> None:
    # target 30 s: the service was back at 20 s (runbook), verified at 35 s
    e = drill(tmp_path, rto=30).evidence
    assert e.rto.measured_s == pytest.approx(20.0) and e.rto.met is True
    assert e.rto.definition == "recovery-completed"
    assert e.rto_verified is not None
    assert e.rto_verified.measured_s == pytest.approx(35.0)
    assert e.rto_verified.verification_s == pytest.approx(15.0)
    assert e.rto.measured_s < e.rto_verified.measured_s
    r = rto_result(e)
    assert r.status is Verdict.PASS and e.verdict is Verdict.PASS
    assert (r.measured_s, r.verified_s, r.verification_s) == (20.0, 35.0, 15.0)
    assert "verified RTO 35.000 s" in r.message and "verification took 15.000 s" in r.message


def test_a_service_rto_over_target_fails_even_when_verification_was_quick(tmp_path: Path) -> None:
    e = drill(tmp_path, rto=10, runbook_s=12.0, verify_s=0.5).evidence
    assert rto_result(e).status is Verdict.FAIL and e.verdict is Verdict.FAIL
    assert any(r.startswith("RTO") and "exceeds" in r for r in e.reasons)


def test_a_recorded_service_instant_is_the_service_rto(tmp_path: Path) -> None:
    e = drill(tmp_path, back_after_s=1.0).evidence
    assert e.rto.measured_s == pytest.approx(1.0) and e.rto.definition == "service-recovered"
    assert e.rto_verified is not None and e.rto_verified.measured_s == pytest.approx(35.0)


def test_no_service_rto_when_verification_failed(tmp_path: Path) -> None:
    e = drill(tmp_path, verify_fails=True, back_after_s=1.0).evidence
    assert e.rto.measured_s is None and e.rto.met is None
    assert e.rto.note is not None and "did not pass" in e.rto.note
    assert e.rto_verified is not None and e.rto_verified.measured_s is None
    assert e.verdict is Verdict.FAIL and rto_result(e).status is Verdict.FAIL


def test_every_report_shows_both_figures(tmp_path: Path) -> None:
    result = drill(tmp_path, back_after_s=2.0)
    write_evidence(result.evidence, result.directory)
    doc = json.loads((result.directory / "evidence.json").read_text())
    assert doc["rto"]["measured_s"] == 2.0 and doc["rto"]["definition"] == "service-recovered"
    assert doc["rto_verified"] == {"measured_s": 35.0, "verification_s": 15.0}
    assert Evidence.from_json(doc).to_json() == doc
    e = Evidence.from_json(doc)

    suite = ET.fromstring(render_junit(e).split("\n", 1)[1]).find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert (props["rto_service_s"], props["rto_verified_s"], props["verification_s"]) == (
        "2.000", "35.000", "15.000")
    case = next(c for c in suite.iter("testcase") if c.get("name") == "RTO")
    assert case.get("time") == "2.000"
    out = case.find("system-out")
    assert out is not None and out.text is not None and "verified RTO 35.000 s" in out.text

    md = render_markdown(e)
    assert "| RTO, service (service-recovered) | 2.00 s | 60.00 s | met |" in md
    assert "| RTO, verified (not judged) | 35.00 s |" in md
    assert "| verification time | 15.00 s |" in md

    html = render_html(e)
    assert 'id="rto-service"' in html and 'id="rto-verified"' in html
    assert 'id="rto-definition"' in html and "judged on the <b>service RTO</b>" in html
    assert "service back (" in html and "verified (" in html  # both instants on the timeline

    rows = history.load(tmp_path / "ev")
    assert (rows[0].rto_s, rows[0].rto_verified_s, rows[0].verification_s) == (2.0, 35.0, 15.0)


def test_a_history_from_before_the_service_rto_is_migrated_honestly(tmp_path: Path) -> None:
    old = tmp_path / history.HISTORY_FILE
    conn = sqlite3.connect(old)
    conn.executescript(
        "CREATE TABLE drills (drill_id TEXT PRIMARY KEY, scenario TEXT NOT NULL, variant TEXT "
        "NOT NULL, asset TEXT NOT NULL, tier INTEGER NOT NULL, site TEXT NOT NULL, verdict TEXT "
        "NOT NULL, started_utc TEXT NOT NULL, finished_utc TEXT NOT NULL, rto_s REAL, "
        "rto_target_s REAL NOT NULL, rto_met INTEGER, rpo_s REAL, rpo_target_s REAL NOT NULL, "
        "rpo_met INTEGER, directory TEXT NOT NULL, evidence_sha256 TEXT NOT NULL, "
        "runbook_sha256 TEXT, git_commit TEXT, reasons TEXT NOT NULL);"
        "INSERT INTO drills VALUES ('d1','s','v','a',1,'site','PASS','2026-01-01T00:00:00Z',"
        "'2026-01-01T00:01:00Z',42.0,60,1,1.0,3600,1,'d1','x',NULL,NULL,'[]');")
    conn.commit()
    conn.close()
    (row,) = history.load(tmp_path)
    # the old figure was fault -> verified: kept as such; the service RTO was never measured
    assert (row.rto_s, row.rto_met, row.rto_verified_s, row.verification_s) == (
        None, None, 42.0, None)
    assert history.load(tmp_path) == [row]  # migrating twice changes nothing
