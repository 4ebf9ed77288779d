"""Evidence from real drills against the lab: schema-valid, signed and verifiable, free of every
credential in the inventory; and a drill run through the pytest gate in this very session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import signing
from harness.inventory import ResticTarget, S3Target, load_inventory
from harness.model import Evidence, Verdict
from harness.provenance import ExerciseInput
from harness.runner import DrillRequest, run_drill
from lab.stack import ASSET_ID, Lab
from reports.render import write_evidence
from reports.validate import schema_errors
from scenarios.artifact_deletion import ArtifactDeletion

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def signed_lab_drill(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        tuple[Path, Path]]:
    """One purge drill (restic restore), signed, with the exercise given as the CLI would."""
    root = tmp_path_factory.mktemp("lab-evidence")
    key, pub = signing.keygen(root / "keys" / "drill")
    given = ExerciseInput(reason="restic restores were never exercised end to end",
                          planned_date="2026-11-25", participants=(("Ana Ruiz", "lead"),),
                          approver="Head of SRE")
    result = run_drill(load_inventory(lab.inventory_path),
                       DrillRequest(ArtifactDeletion, "purge", ASSET_ID, root / "ev",
                                    exercise=given), progress=print)
    write_evidence(result.evidence, result.directory, signing_key=key)
    yield result.directory, pub


def lab_secrets(lab: Lab) -> list[str]:
    inv = load_inventory(lab.inventory_path)
    out = [lab.state.operator_key, lab.state.operator_secret, lab.state.backup_key,
           lab.state.backup_secret, lab.state.restic_password]
    for t in inv.targets.values():
        if isinstance(t, S3Target):
            out += [t.access_key.value, t.secret_key.value]
        elif isinstance(t, ResticTarget):
            out += [t.password.value] + [s.value for s in (t.access_key, t.secret_key) if s]
    assert all(len(s) >= 8 for s in out)  # real keys, so "not found" means something
    return sorted(set(out))


def test_real_lab_evidence_matches_the_schema_with_every_auditor_field(
        signed_lab_drill: tuple[Path, Path]) -> None:
    directory, _ = signed_lab_drill
    doc = json.loads((directory / "evidence.json").read_text())
    assert doc["verdict"] == "PASS", doc["reasons"]
    assert schema_errors(doc) == []
    asset = doc["scope"]["assets"][0]
    assert asset["model"] == "lab-mlp" and asset["version"].startswith("manifest-sha256:")
    assert asset["backup_locations"] and "restic" in asset["backup_locations"][0]
    assert {s["role"] for s in doc["scope"]["systems"]} == {"artifact store", "backup",
                                                            "serving endpoint"}
    assert doc["exercise"]["approver"] == "Head of SRE"
    assert {b["event"] for b in doc["baseline"]} >= {"asset.version", "restorable.proven",
                                                     "baseline.outputs", "safety.copy.taken"}
    # versions are asked from the tools installed here, not typed in
    assert doc["tool_versions"]["restic"].startswith("restic ")
    assert "ceph version" in doc["tool_versions"]["radosgw"]
    assert doc["runbook"]["steps"][0] == "locate-restore-point"


def test_real_lab_evidence_is_signed_and_verifies(signed_lab_drill: tuple[Path, Path]) -> None:
    directory, pub = signed_lab_drill
    result = signing.verify(directory, pub)
    assert result.ok, result.lines()


def test_no_inventory_credential_appears_in_any_evidence_file(
        lab: Lab, signed_lab_drill: tuple[Path, Path]) -> None:
    directory, _ = signed_lab_drill
    secrets = lab_secrets(lab)
    files = [p for p in directory.parent.rglob("*") if p.is_file()
             and ".work" not in p.parts and ".locks" not in p.parts]
    assert {p.name for p in files} >= {"evidence.json", "journal.jsonl", "report.html",
                                       "junit.xml", "summary.md", "SHA256SUMS",
                                       "SHA256SUMS.sig", "history.sqlite"}
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret.encode() not in data, f"a credential is in {path.name}"


@pytest.mark.drill("artifact-deletion", variant="soft")
def test_the_pytest_gate_runs_a_real_drill(drill: Evidence) -> None:
    """The soft-delete drill as a CI gate test: runs against this session's lab."""
    assert drill.verdict is Verdict.PASS
    assert drill.rto.met is True and drill.rpo.met is True
