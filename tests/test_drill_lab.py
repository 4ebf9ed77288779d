"""Drills against the real lab: both variants pass, sabotaged recoveries fail, drills that cannot
run are inconclusive and delete nothing, and the lab is back as found after every drill."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from harness.context import DrillContext
from harness.integrity import Manifest
from harness.inventory import Inventory, load_inventory
from harness.model import Verdict
from harness.runbook.object_state import ObjectState, VersionPlan
from harness.runbook.restore_points import set_version_restore_point
from harness.runner import DrillRequest, DrillResult, StepOverride, run_drill
from harness.targets.s3 import S3Store
from lab.stack import MODEL_NAME, MODELS_BUCKET, Lab
from reports.render import write_evidence
from scenarios.artifact_deletion import ArtifactDeletion

pytestmark = pytest.mark.lab

ASSET = "lab-mlp-weights"


def drill(inventory: Inventory, variant: str, root: Path,
          overrides: dict[str, StepOverride] | None = None) -> DrillResult:
    result = run_drill(inventory, DrillRequest(ArtifactDeletion, variant, ASSET, root),
                       overrides=overrides, progress=print)
    write_evidence(result.evidence, result.directory)
    return result


def store_state(lab: Lab) -> list[tuple[str, str, int, bool]]:
    store = S3Store(lab.operator_target())
    return [(v.key, v.etag, v.size, v.is_delete_marker)
            for v in store.list_versions(MODELS_BUCKET, f"{MODEL_NAME}/")]


def assert_lab_as_found(lab: Lab) -> None:
    """Every object matches the lab's manifest, and the node serves the golden outputs."""
    store = S3Store(lab.operator_target())
    manifest = Manifest.load(lab.asset_dir / "manifest.json")
    got = store.hash_objects(MODELS_BUCKET,
                             [(f"{MODEL_NAME}/{f.path}", None) for f in manifest.files])
    for f in manifest.files:
        assert got[f"{MODEL_NAME}/{f.path}"][0] == f.sha256, f.path
    raw = store.read_bytes(MODELS_BUCKET, f"{MODEL_NAME}/manifest.json")
    assert raw == (lab.asset_dir / "manifest.json").read_bytes()
    assert lab.node_readiness() == "ready"


@pytest.fixture
def inventory(lab: Lab) -> Iterator[Inventory]:
    inv = load_inventory(lab.inventory_path)
    yield inv
    assert_lab_as_found(lab)


def test_soft_deletion_recovers_from_bucket_versions(lab: Lab, inventory: Inventory,
                                                     evidence_root: Path) -> None:
    before = store_state(lab)
    result = drill(inventory, "soft", evidence_root)
    ev = result.evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert ev.rto.measured_s is not None and 0 < ev.rto.measured_s < ev.rto.target_s
    assert ev.rpo.measured_s is not None and ev.rpo.met is True
    assert ev.restore_point is not None and ev.restore_point.kind == "bucket-version"
    assert [s.name for s in ev.steps if s.phase.value == "runbook"] == [
        "locate-restore-point", "pull", "verify-sha256", "redeploy", "smoke-test", "mark-ready"]
    assert all(c.ok for c in ev.integrity) and len(ev.integrity) >= 2
    assert ev.smoke["identical_outputs"] == ev.smoke["golden_inputs"] > 0
    assert ev.reverted
    # removing the delete markers puts history back exactly as it was found
    assert store_state(lab) == before
    doc = json.loads((result.directory / "evidence.json").read_text())
    for key in ("drill_id", "scenario", "variant", "asset", "verdict", "reasons", "rto", "rpo",
                "timeline", "steps", "integrity"):
        assert key in doc
    assert set(doc["rto"]) >= {"measured_s", "target_s", "met"}
    assert {"event", "utc", "since_injection_s"} <= set(doc["timeline"][0])
    assert {"name", "start", "end", "outcome"} <= set(doc["steps"][0])
    assert {"object", "expected_sha256", "actual_sha256", "ok"} <= set(doc["integrity"][0])
    journal = (result.directory / "journal.jsonl").read_text().splitlines()
    assert any(json.loads(line).get("event") == "fault.injected" for line in journal)
    secrets = [lab.state.operator_secret, lab.state.backup_secret, lab.state.restic_password,
               lab.state.operator_key, lab.state.backup_key]
    for f in result.directory.iterdir():
        text = f.read_text()
        assert not any(secret in text for secret in secrets), f"a credential leaked into {f.name}"
    html = (result.directory / "report.html").read_text()
    assert "PASS" in html and "<script" not in html and "http://" not in html.split("<body>")[0]


def test_purge_recovers_from_restic_backup(lab: Lab, inventory: Inventory,
                                           evidence_root: Path) -> None:
    result = drill(inventory, "purge", evidence_root)
    ev = result.evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert ev.restore_point is not None and ev.restore_point.kind == "restic-snapshot"
    snaps = lab.restic().snapshots(path=str(lab.stage_dir))
    assert ev.restore_point.identity == snaps[-1].id
    # RPO is the injection time minus the snapshot's own timestamp
    injected = next(t for t in ev.timeline if t.event == "fault.injected")
    assert ev.rpo.measured_s == pytest.approx(
        (injected.utc - snaps[-1].time).total_seconds(), abs=1e-3)


def _oldest_version(ctx: DrillContext, original: Callable[[], None]) -> None:
    """Sabotage: restore the OLDEST version of every object (a different, older model)."""
    state: ObjectState = original.__self__.state  # type: ignore[attr-defined]
    a = ctx.asset
    store = ctx.adapters.s3(a.store)
    plan = {}
    versions = [v for v in store.list_versions(a.bucket, a.prefix) if not v.is_delete_marker]
    for key in state.keys:
        mine = [v for v in versions if v.key == key]
        plan[key] = VersionPlan(key, mine[-1], (), len(mine) - 1)
    state.plan = plan
    set_version_restore_point(ctx, state, plan)


def test_restoring_an_older_version_fails(lab: Lab, inventory: Inventory,
                                          evidence_root: Path) -> None:
    result = drill(inventory, "soft", evidence_root, {"locate-restore-point": _oldest_version})
    ev = result.evidence
    assert ev.verdict is Verdict.FAIL
    assert any("verify-sha256" in r for r in ev.reasons), ev.reasons
    assert ev.restore_point is not None and ev.restore_point.newer_versions_lost > 0
    assert ev.rto.measured_s is None and ev.rto.met is None
    assert ev.reverted


def test_recovery_that_skips_verification_of_a_corrupted_shard_fails(
        lab: Lab, inventory: Inventory, evidence_root: Path) -> None:
    def pull_then_corrupt(ctx: DrillContext, original: Callable[[], None]) -> None:
        original()
        a = ctx.asset
        store = ctx.adapters.s3(a.store)
        key = next(k for k in store.list_keys(a.bucket, a.prefix) if k.endswith(".safetensors"))
        data = bytearray(store.read_bytes(a.bucket, key) or b"")
        data[len(data) // 2] ^= 0xFF  # same size, one flipped byte
        store.put_bytes(a.bucket, key, bytes(data))

    def no_verification(ctx: DrillContext, original: Callable[[], None]) -> None:
        return None

    result = drill(inventory, "purge", evidence_root,
                   {"pull": pull_then_corrupt, "verify-sha256": no_verification})
    ev = result.evidence
    assert ev.verdict is Verdict.FAIL
    # the node refuses the corrupted shard, and independent verification sees it too
    assert any("redeploy" in r for r in ev.reasons), ev.reasons
    assert any(not c.ok for c in ev.integrity if c.phase.value == "verify")
    assert ev.reverted


def test_stopped_store_is_inconclusive_and_deletes_nothing(lab: Lab, inventory: Inventory,
                                                           evidence_root: Path) -> None:
    before = store_state(lab)
    lab.ceph.stop_rgw()
    try:
        ev = drill(inventory, "soft", evidence_root).evidence
    finally:
        lab.ceph.start_rgw()
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("unreachable" in r for r in ev.reasons), ev.reasons
    assert not any(t.event == "fault.injected" for t in ev.timeline)
    assert store_state(lab) == before


def _variant_inventory(lab: Lab, tmp_path: Path, change: Callable[[dict], None]) -> Inventory:
    doc = yaml.safe_load(lab.inventory_path.read_text())
    change(doc)
    doc["assets"][0]["golden"] = str(lab.asset_dir / "golden.json")
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc))
    return load_inventory(path)


def test_no_restore_point_is_inconclusive_and_deletes_nothing(
        lab: Lab, inventory: Inventory, evidence_root: Path, tmp_path: Path) -> None:
    inv = _variant_inventory(lab, tmp_path, lambda d: d["assets"][0].update(
        backup_path="/never/backed/up"))
    before = store_state(lab)
    ev = drill(inv, "purge", evidence_root).evidence
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("no restore point" in r for r in ev.reasons), ev.reasons
    assert store_state(lab) == before


def test_target_not_drill_safe_is_refused(lab: Lab, inventory: Inventory, evidence_root: Path,
                                          tmp_path: Path) -> None:
    inv = _variant_inventory(lab, tmp_path, lambda d: d["targets"]["artifact-store"].update(
        drill_safe=False))
    before = store_state(lab)
    ev = drill(inv, "soft", evidence_root).evidence
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("drill_safe" in r for r in ev.reasons), ev.reasons
    assert store_state(lab) == before


def test_ctrl_c_during_the_runbook_still_reverts(lab: Lab, inventory: Inventory,
                                                 evidence_root: Path) -> None:
    def interrupt(ctx: DrillContext, original: Callable[[], None]) -> None:
        raise KeyboardInterrupt

    result = drill(inventory, "purge", evidence_root, {"pull": interrupt})
    assert result.evidence.verdict is Verdict.INCONCLUSIVE
    assert result.interrupted
    assert result.evidence.reverted
    assert any("interrupted" in r for r in result.evidence.reasons)


def test_cli_run_prints_verdict_and_exit_code(lab: Lab, inventory: Inventory,
                                              tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "artifact-deletion", "--variant", "soft",
         "--inventory", str(lab.inventory_path), "--evidence-dir", str(tmp_path / "ev")],
        check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: PASS" in proc.stdout
    assert "RTO: " in proc.stdout and "RPO: " in proc.stdout and "report: " in proc.stdout


def test_cli_malformed_inventory_is_a_usage_error_and_touches_nothing(
        lab: Lab, inventory: Inventory, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(lab.inventory_path.read_text().replace("tier: 1", "tier: one"))
    before = store_state(lab)
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "artifact-deletion", "--inventory", str(bad),
         "--evidence-dir", str(tmp_path / "ev")], check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert f"{bad}:" in proc.stderr and "assets[0].tier" in proc.stderr
    assert not (tmp_path / "ev").exists()
    assert store_state(lab) == before
