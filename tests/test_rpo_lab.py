"""RPO and restore points against the real lab: a restic snapshot dated after the fault (a backup
host with a fast clock) is never a PASS's restore point; adapter-loss ``soft`` on an adapter older
than its RPO target PASSes with RPO 0 and nothing lost; a dump misdated by its manifest FAILs."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from harness.inventory import Inventory, load_inventory
from harness.model import Verdict
from harness.runner import DrillRequest, DrillResult, run_drill
from harness.scenario import Scenario, get_scenario
from harness.targets.s3 import S3Store
from lab.postgres import (
    ANNOTATIONS_ASSET,
    ANNOTATIONS_DB,
    ANNOTATOR_ROLE,
    PostgresServer,
    backup_database,
    write_annotations,
)
from lab.stack import Lab
from reports.render import write_evidence

pytestmark = pytest.mark.lab

FUTURE_TAG = "drillbook-test-fast-clock"


def drill(inventory: Inventory, scenario: str, variant: str, asset: str,
          root: Path) -> DrillResult:
    cls: type[Scenario] = get_scenario(scenario)
    result = run_drill(inventory, DrillRequest(cls, variant, asset, root), progress=print)
    write_evidence(result.evidence, result.directory)
    return result


def injected_at(result: DrillResult) -> datetime:
    return next(t.utc for t in result.evidence.timeline if t.event == "fault.injected")


def test_a_future_dated_snapshot_is_never_the_restore_point(lab: Lab,
                                                            evidence_root: Path) -> None:
    inventory = load_inventory(lab.inventory_path)
    repo, path = lab.restic(), str(lab.stage_dir)
    assert repo.snapshots(path=path), "the lab has no restic snapshot of the model"
    # a backup host whose clock runs ten minutes fast (restic reads --time as local time)
    ahead = datetime.now().astimezone() + timedelta(minutes=10)
    repo.run("backup", "--time", ahead.strftime("%Y-%m-%d %H:%M:%S"), "--host", "fast-clock",
             "--tag", FUTURE_TAG, path)
    future = [s for s in repo.snapshots(path=path) if FUTURE_TAG in s.tags]
    assert len(future) == 1 and future[0].time > datetime.now(UTC) + timedelta(minutes=5)
    try:
        result = drill(inventory, "artifact-deletion", "purge", "lab-mlp-weights", evidence_root)
    finally:
        repo.run("forget", future[0].id)
    ev = result.evidence
    point = ev.restore_point
    assert point is not None and point.kind == "restic-snapshot"
    assert point.identity != future[0].id
    assert point.created <= injected_at(result)
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert ev.rpo.measured_s is not None and ev.rpo.measured_s >= 0
    assert ev.rpo.definition == "restore-point-age"
    assert ev.audit is not None
    named = [f for f in ev.audit.findings
             if f.severity == "deviation" and future[0].short_id in f.summary]
    assert named and "after" in named[0].summary and "clock tolerance" in named[0].summary
    doc = json.loads((result.directory / "evidence.json").read_text())
    assert any(future[0].short_id in d for d in doc["deviations"])


def test_adapter_soft_on_an_old_adapter_passes_with_rpo_zero(lab: Lab,
                                                             evidence_root: Path) -> None:
    # an RPO target of 1 s makes the adapter (written when the lab came up) far older than it;
    # the copy sits beside the lab's inventory, whose paths are relative to it
    doc = yaml.safe_load(lab.inventory_path.read_text())
    doc["objectives"].setdefault("assets", {})["lab-lora-adapter"] = {"rpo_s": 1}
    path = lab.inventory_path.with_name("inventory-rpo-1s.yaml")
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    try:
        inventory = load_inventory(path)
    finally:
        path.unlink()
    asset = inventory.assets["lab-lora-adapter"]
    store = S3Store(inventory.s3(asset.store))
    written = max(v.last_modified for v in store.list_versions(asset.bucket, asset.prefix)
                  if v.is_latest and not v.is_delete_marker)
    result = drill(inventory, "adapter-loss", "soft", asset.id, evidence_root)
    ev = result.evidence
    assert (injected_at(result) - written).total_seconds() > 1  # older than the target
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert ev.rpo.measured_s == 0.0 and ev.rpo.met is True
    assert ev.rpo.definition == "writes-lost"
    assert ev.restore_point is not None and ev.restore_point.continuous
    assert ev.restore_point.newer_versions_lost == 0
    loss = ev.sections["loss"]
    assert loss["rpo_s"] == 0.0 and loss["rpo_definition"] == "writes-lost"
    assert loss["lost_versions"] == 0 and loss["lost_files"] == 0 and loss["rpo_met"] is True
    assert "writes-lost" in (result.directory / "summary.md").read_text()


def test_a_dump_misdated_by_its_manifest_fails(lab: Lab, evidence_root: Path) -> None:
    inventory = load_inventory(lab.inventory_path)
    asset = inventory.assets[ANNOTATIONS_ASSET]
    assert asset.backup is not None
    dump = backup_database(lab, ANNOTATIONS_DB)
    time.sleep(4)
    write_annotations(PostgresServer(lab.root).db(ANNOTATOR_ROLE), 3, tag="misdated")
    time.sleep(3)
    # a buggy backup job (or an adversary with write access to the backup bucket) dates the
    # manifest now: the dump would look seven seconds newer than it is, the RPO understated
    store = S3Store(inventory.s3(asset.backup))
    original = store.read_bytes(asset.bucket, dump.manifest_key)
    assert original is not None
    manifest = json.loads(original)
    claimed = datetime.now(UTC)
    manifest["created_utc"] = claimed.isoformat()
    store.put_bytes(asset.bucket, dump.manifest_key, json.dumps(manifest).encode())
    try:
        result = drill(inventory, "annotation-db-loss", "drop", ANNOTATIONS_ASSET, evidence_root)
    finally:
        store.put_bytes(asset.bucket, dump.manifest_key, original)
    ev = result.evidence
    assert ev.verdict is Verdict.FAIL
    assert any("misdated" in r and dump.identity in r and "pg_restore" in r
               for r in ev.reasons), ev.reasons
    assert any("older than its manifest says" in r for r in ev.reasons), ev.reasons
    # the RPO is measured from the archive's own time, not the manifest's. pg_dump dates its
    # archive in whole seconds when it starts, just after the job noted the time: the two agree
    # to within that second
    assert ev.restore_point is not None and ev.restore_point.identity == dump.identity
    second = timedelta(seconds=1)
    assert dump.created - second <= ev.restore_point.created <= dump.created + second
    assert ev.restore_point.created < claimed - timedelta(seconds=5)
    assert ev.rpo.measured_s is not None
    assert ev.rpo.measured_s >= (injected_at(result) - dump.created - second).total_seconds()
    assert ev.audit is not None and any(
        f.severity == "fail" and "misdated" in f.summary for f in ev.audit.findings)
    assert ev.reverted
