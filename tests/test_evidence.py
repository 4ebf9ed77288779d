"""The evidence record without a lab: schema, auditor fields (given, and absent shown as absent),
the renderers (HTML, JUnit, Markdown), the findings sidecar and ``drillbook report``."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, ClassVar

import pytest

from harness.cli import main
from harness.errors import Inconclusive, StepFailed
from harness.inventory import load_inventory
from harness.lease import MemoryResolver
from harness.model import RestorePoint, Verdict, utc_now
from harness.provenance import ExerciseInput, redact_location, runbook_version
from harness.runner import DrillRequest, DrillResult, run_drill
from harness.scenario import RunbookStep, Scenario
from reports.render import write_evidence
from reports.validate import EvidenceInvalid, schema_errors, validate_evidence

INVENTORY = """\
version: 1
site: unit-site
targets:
  store: {kind: s3, endpoint: "http://127.0.0.1:9", access_key: AKIDUNIT, secret_key: s3cr3t-unit,
          drill_safe: true}
  backups: {kind: restic, repository: "rest:http://bob:pw-in-url@127.0.0.1:9/repo",
            password: restic-pass-unit, drill_safe: false}
assets:
  - {id: w, tier: 1, kind: model-weights, store: store, bucket: b, prefix: p/, backup: backups,
     backup_path: /srv/w}
objectives:
  tiers: {1: {rto_s: %s, rpo_s: 3600}}
probe: {interval_s: 0.01, detect_timeout_s: 0.2}
%s
"""

EXERCISE = """\
exercise:
  title: Q4 model-store recovery test
  reason: the artifact store had the most incidents this year
  planned_date: 2026-11-20
  participants: [{name: Ana Ruiz, role: incident lead}, {name: Li Wei, role: observer}]
  approver: CISO office
"""


class Drill(Scenario):
    """A scripted drill: PASS by default; class attributes make it FAIL or INCONCLUSIVE."""

    name: ClassVar[str] = "scripted"
    summary: ClassVar[str] = "scripted test drill"
    variants: ClassVar[tuple[str, ...]] = ("only",)
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    blast_radius: ClassVar[str] = "nothing real"
    restore_error: ClassVar[Exception | None] = None
    preflight_error: ClassVar[Exception | None] = None
    section: ClassVar[dict[str, Any] | None] = None

    def preflight(self) -> None:
        if self.preflight_error:
            raise self.preflight_error
        self.ctx.event("asset.version", model="unit-model", version="v7")

    def baseline(self) -> None:
        self.ctx.event("baseline.outputs", rows=3)

    def inject(self) -> None:
        pass

    def detect(self) -> bool:
        return True

    def runbook(self) -> list[RunbookStep]:
        def locate() -> None:
            self.ctx.findings.restore_point = RestorePoint("test", "snap1", utc_now(), "here")

        def restore() -> None:
            if self.restore_error:
                raise self.restore_error
            self.ctx.integrity("p/a.safetensors", "a" * 64, "a" * 64)
        return [RunbookStep("locate", locate, "find it"), RunbookStep("restore", restore)]

    def verify(self) -> None:
        self.ctx.findings.smoke.update({"golden_inputs": 3, "identical_outputs": 3})
        if self.section is not None:
            self.ctx.findings.sections["load"] = dict(self.section)

    def revert(self) -> None:
        pass


def inventory_file(tmp_path: Path, *, rto: float = 60, exercise: bool = False) -> Path:
    p = tmp_path / "inv.yaml"
    tmp_path.mkdir(parents=True, exist_ok=True)
    p.write_text(INVENTORY % (f"{rto:f}", EXERCISE if exercise else ""))
    return p


def scripted(tmp_path: Path, *, rto: float = 60, exercise: bool = False,
             given: ExerciseInput | None = None, signing_key: Path | None = None,
             evidence_root: Path | None = None, **attrs: Any) -> DrillResult:
    cls = type("D", (Drill,), attrs)
    inv = load_inventory(inventory_file(tmp_path, rto=rto, exercise=exercise))
    req = DrillRequest(cls, "only", "w", evidence_root or tmp_path / "ev",
                       exercise=given or ExerciseInput())
    result = run_drill(inv, req, progress=lambda m: None, lease_resolver=MemoryResolver())
    write_evidence(result.evidence, result.directory, signing_key=signing_key)
    return result


def doc_of(result: DrillResult) -> dict[str, Any]:
    return json.loads((result.directory / "evidence.json").read_text())


@pytest.mark.parametrize("attrs, verdict", [
    ({}, Verdict.PASS),
    ({"restore_error": StepFailed("sha mismatch")}, Verdict.FAIL),
    ({"preflight_error": Inconclusive("store unreachable")}, Verdict.INCONCLUSIVE),
])
def test_every_verdict_writes_schema_valid_evidence(tmp_path: Path, attrs: dict[str, Any],
                                                    verdict: Verdict) -> None:
    result = scripted(tmp_path, **attrs)
    assert result.evidence.verdict is verdict
    doc = doc_of(result)
    assert schema_errors(doc) == []
    names = {p.name for p in result.directory.iterdir()}
    assert {"evidence.json", "journal.jsonl", "report.html", "junit.xml", "summary.md",
            "SHA256SUMS"} <= names


def test_schema_rejects_a_record_missing_an_auditor_field(tmp_path: Path) -> None:
    doc = doc_of(scripted(tmp_path))
    del doc["exercise"]["approver"]
    doc["rto"]["measured_s"] = "fast"
    errors = schema_errors(doc)
    assert any(e.startswith("exercise") and "approver" in e for e in errors)
    assert any(e.startswith("rto/measured_s") for e in errors)
    with pytest.raises(EvidenceInvalid):
        validate_evidence(doc)


def test_absent_exercise_fields_are_recorded_as_absent(tmp_path: Path) -> None:
    doc = doc_of(scripted(tmp_path))
    ex = doc["exercise"]
    assert ex["participants"] == [] and ex["approver"] is None and ex["reason"] is None
    assert ex["planned_date"] is None and ex["sources"] == {}
    assert ex["actual_date"] == doc["started_utc"][:10]
    html = (Path(doc["inventory"]).parent / "ev" / doc["drill_id"] / "report.html").read_text()
    assert html.count("not given") >= 4


def test_exercise_fields_from_inventory_and_cli_with_their_source(tmp_path: Path) -> None:
    doc = doc_of(scripted(tmp_path, exercise=True))
    ex = doc["exercise"]
    assert ex["title"] == "Q4 model-store recovery test"
    assert ex["planned_date"] == "2026-11-20" and ex["approver"] == "CISO office"
    assert ex["participants"][0] == {"name": "Ana Ruiz", "role": "incident lead"}
    assert set(ex["sources"].values()) == {"inventory"}
    given = ExerciseInput(approver="Head of SRE", participants=(("Sam", "runbook operator"),))
    ex = doc_of(scripted(tmp_path / "b", exercise=True, given=given))["exercise"]
    assert ex["approver"] == "Head of SRE" and ex["sources"]["approver"] == "cli"
    assert ex["participants"] == [{"name": "Sam", "role": "runbook operator"}]
    assert ex["reason"] == "the artifact store had the most incidents this year"
    assert ex["sources"]["reason"] == "inventory"


def test_auditor_fields_are_measured_not_typed(tmp_path: Path) -> None:
    doc = doc_of(scripted(tmp_path))
    assert doc["objectives_source"] == "objectives.tiers.1"
    scope = doc["scope"]
    assert scope["site"] == "unit-site"
    # what the runner enforced, then the scenario's own words
    assert scope["blast_radius"] == "declared: s3-prefix 'b/p/' in target 'store' (nothing real)"
    asset = scope["assets"][0]
    assert asset["model"] == "unit-model" and asset["version"] == "v7" and asset["tier"] == 1
    assert asset["artifact_uris"][0] == "s3://b/p/"
    # the restic repository URL carried a password: the record keeps the place, not the secret
    assert "pw-in-url" not in json.dumps(doc)
    assert asset["backup_locations"] == ["rest:http://127.0.0.1:9/repo (path /srv/w)"]
    assert [b["event"] for b in doc["baseline"]] == ["asset.version", "baseline.outputs"]
    assert doc["runbook"]["steps"] == ["locate", "restore"]
    assert len(doc["runbook"]["definition_sha256"]) == 64
    assert doc["runbook"]["git_commit"] is None or len(doc["runbook"]["git_commit"]) == 40
    assert doc["tool_versions"]["restic"].startswith(("restic ", "not installed"))
    env = doc["environment"]
    assert env["python"].startswith("CPython 3.") and len(env["inventory_sha256"]) == 64


def test_runbook_hash_changes_with_the_steps() -> None:
    a = runbook_version(Drill, [("locate", ""), ("restore", "")])
    b = runbook_version(Drill, [("locate", ""), ("restore", ""), ("smoke", "")])
    assert a.definition_sha256 == runbook_version(Drill, [("locate", ""), ("restore", "")]) \
        .definition_sha256
    assert a.definition_sha256 != b.definition_sha256


def test_redaction_of_locations() -> None:
    assert redact_location("s3:http://k:s@host:9000/b/restic") == "s3:http://host:9000/b/restic"
    assert redact_location("https://user:pw@h/x") == "https://h/x"
    assert redact_location("/srv/restic-repo") == "/srv/restic-repo"


def test_failed_drill_has_findings_and_deviations(tmp_path: Path) -> None:
    doc = doc_of(scripted(tmp_path, restore_error=StepFailed("sha mismatch")))
    assert doc["findings"][0]["id"] == "F1" and doc["findings"][0]["severity"] == "fail"
    assert "sha mismatch" in doc["findings"][0]["summary"]
    assert doc["findings"][0]["corrective_action"] is None
    assert any("'restore' failed" in d for d in doc["deviations"])


def test_junit_has_one_case_per_objective_mapped_from_the_verdicts(tmp_path: Path) -> None:
    def cases(result: DrillResult) -> dict[str, str]:
        root = ET.parse(result.directory / "junit.xml").getroot()
        out = {}
        for case in root.iter("testcase"):
            kinds = [child.tag for child in case if child.tag in ("failure", "error")]
            out[case.get("name", "")] = kinds[0] if kinds else "pass"
        return out

    passed = cases(scripted(tmp_path / "a", section={"slo": {"met": True, "summary": "p95 ok"}}))
    assert passed == {"RTO": "pass", "RPO": "pass", "integrity": "pass", "smoke": "pass",
                      "slo:load": "pass", "revert": "pass", "verdict": "pass"}
    failed = cases(scripted(tmp_path / "b", restore_error=StepFailed("sha mismatch")))
    assert failed["RTO"] == "failure" and failed["verdict"] == "failure"
    slow = cases(scripted(tmp_path / "c", rto=0.0001))
    assert slow["RTO"] == "failure" and slow["RPO"] == "pass"
    inconclusive = cases(scripted(tmp_path / "d", preflight_error=Inconclusive("unreachable")))
    assert inconclusive["RTO"] == "error" and inconclusive["verdict"] == "error"
    assert "pass" not in {v for k, v in inconclusive.items() if k != "RPO"}


def test_summary_markdown_leads_with_the_verdict_and_objectives(tmp_path: Path) -> None:
    result = scripted(tmp_path, rto=0.0001)
    md = (result.directory / "summary.md").read_text()
    assert md.startswith("### ❌ DR drill FAIL")
    assert "| RTO, service (recovery-completed) |" in md and "**missed**" in md
    assert "| RTO, verified (not judged) |" in md and "| verification time |" in md
    assert "[report.html](report.html)" in md


def test_generic_sections_render_without_knowing_them(tmp_path: Path) -> None:
    section = {"slo": {"met": False, "summary": "p95 900 ms > 500 ms"},
               "rps": [1, 5, 9, 12, 12, 11], "per_second": [{"t": 0, "p95_ms": 120},
                                                            {"t": 1, "p95_ms": 900}],
               "note": "<script>alert(1)</script>"}
    result = scripted(tmp_path, section=section)
    html = (result.directory / "report.html").read_text()
    assert 'id="section-load"' in html and "class=\"chart spark\"" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "p95_ms" in html


def test_report_cli_adds_corrective_actions_through_the_sidecar(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]
                                                                ) -> None:
    result = scripted(tmp_path, restore_error=StepFailed("sha mismatch"))
    d = result.directory
    before = (d / "evidence.json").read_bytes()
    assert main(["report", str(d), "--for", "F1", "--action", "alert on restic snapshot age",
                 "--owner", "Ana Ruiz", "--due", "2026-12-31"]) == 0
    assert main(["report", str(d), "--finding", "the pager did not fire"]) == 0
    assert main(["report", str(d), "--for", "F9", "--action", "x"]) == 3
    assert "no finding 'F9'" in capsys.readouterr().err
    assert (d / "evidence.json").read_bytes() == before  # the drill's record is never edited
    html = (d / "report.html").read_text()
    assert "alert on restic snapshot age" in html and "Ana Ruiz" in html and "2026-12-31" in html
    assert "the pager did not fire" in html and ">team<" in html
    # hand edits to the sidecar are picked up by the next render
    text = (d / "findings.yaml").read_text().replace("status: open", "status: done", 1)
    (d / "findings.yaml").write_text(text)
    assert main(["report", str(d)]) == 0
    assert ">done<" in (d / "report.html").read_text()
    assert "findings.yaml" in (d / "SHA256SUMS").read_text()


def test_report_cli_rejects_a_bad_sidecar(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    d = scripted(tmp_path).directory
    (d / "findings.yaml").write_text("findings:\n  - id: Z1\n    severity: catastrophic\n")
    assert main(["report", str(d)]) == 3
    assert "severity" in capsys.readouterr().err


def test_run_cli_validates_exercise_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    inv = inventory_file(tmp_path)
    assert main(["run", "artifact-deletion", "--inventory", str(inv), "--participant", "nobody",
                 "--evidence-dir", str(tmp_path / "ev")]) == 3
    assert "NAME:ROLE" in capsys.readouterr().err
    assert main(["run", "artifact-deletion", "--inventory", str(inv), "--planned-date",
                 "next tuesday", "--evidence-dir", str(tmp_path / "ev")]) == 3
    assert "YYYY-MM-DD" in capsys.readouterr().err
    assert not (tmp_path / "ev").exists()
