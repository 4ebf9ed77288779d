"""Site safety against the real lab: an asset already damaged is refused without a change, a
target that changes under the drill stops it before inject, a write outside the declared blast
radius never reaches the store, and dry runs leave nothing behind."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.context import DrillContext
from harness.guards import SafetyCopy
from harness.inventory import Inventory, load_inventory
from harness.model import Verdict
from harness.runner import DrillRequest, run_drill
from harness.targets.s3 import S3Store
from lab.postgres import ANNOTATIONS_DB, PostgresServer
from lab.stack import MODEL_NAME, MODELS_BUCKET, Lab
from scenarios.artifact_deletion import ArtifactDeletion

pytestmark = pytest.mark.lab

ASSET = "lab-mlp-weights"


def versions(lab: Lab) -> list[tuple[str, str, str, int, bool]]:
    store = S3Store(lab.operator_target())
    return [(v.key, v.version_id, v.etag, v.size, v.is_delete_marker)
            for v in store.list_versions(MODELS_BUCKET, f"{MODEL_NAME}/")]


def shard_key(lab: Lab) -> str:
    return next(k for k, *_ in versions(lab) if k.endswith(".safetensors"))


def cli(lab: Lab, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "run", *args,
                           "--inventory", str(lab.inventory_path), "--quiet"],
                          check=False, capture_output=True, text=True, timeout=600)


@pytest.fixture
def inventory(lab: Lab) -> Iterator[Inventory]:
    yield load_inventory(lab.inventory_path)


@pytest.mark.parametrize("damage", ["differs", "missing"])
@pytest.mark.parametrize("scenario", [("artifact-deletion", "purge"),
                                      ("checkpoint-corruption", "bitrot")])
def test_asset_damaged_before_the_drill_is_refused_and_not_one_version_changes(
        lab: Lab, tmp_path: Path, damage: str, scenario: tuple[str, str]) -> None:
    store = S3Store(lab.operator_target())
    key = shard_key(lab)
    if damage == "differs":
        store.put_bytes(MODELS_BUCKET, key, b"not the weights the manifest names")
    else:
        store.delete(MODELS_BUCKET, key)  # a delete marker: the current object is gone
    damaged = versions(lab)
    added = damaged[0][1] if damaged[0][0] == key else next(
        v for k, v, *_ in damaged if k == key)
    try:
        proc = cli(lab, scenario[0], "--variant", scenario[1], "--asset", ASSET,
                   "--evidence-dir", str(tmp_path / "ev"))
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "already damaged before the drill" in proc.stdout, proc.stdout
        assert key in proc.stdout and damage in proc.stdout
        assert versions(lab) == damaged  # not one version added, removed or reordered
    finally:
        store.delete(MODELS_BUCKET, key, added)


def test_target_changed_between_preflight_and_safety_copy_stops_before_inject(
        lab: Lab, inventory: Inventory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = S3Store(lab.operator_target())
    key = shard_key(lab)
    original = SafetyCopy.take

    def another_writer_first(self: SafetyCopy) -> int:
        store.put_bytes(MODELS_BUCKET, key, b"a new checkpoint published meanwhile")
        return original(self)

    monkeypatch.setattr(SafetyCopy, "take", another_writer_first)
    before = versions(lab)
    result = run_drill(inventory, DrillRequest(ArtifactDeletion, "purge", ASSET, tmp_path),
                       progress=print)
    after = versions(lab)
    written = next(v for k, v, *rest in after if k == key and (k, v, *rest) not in before)
    try:
        ev = result.evidence
        assert ev.verdict is Verdict.INCONCLUSIVE
        assert any("changed between preflight and the safety copy" in r for r in ev.reasons)
        assert not any(t.event == "fault.injected" for t in ev.timeline)
        # the other writer's version is the only change: the drill deleted nothing
        assert [v for v in after if v[1] != written] == before
        safety = S3Store(lab.operator_target())
        assert safety.list_keys(inventory.safety_bucket, f"{ev.drill_id}/") == []
    finally:
        store.delete(MODELS_BUCKET, key, written)


def test_a_write_outside_the_declared_blast_radius_is_refused(
        lab: Lab, inventory: Inventory, tmp_path: Path) -> None:
    def pull_and_stray(ctx: DrillContext, original: Callable[[], None]) -> None:
        original()
        ctx.adapters.s3(ctx.asset.store).put_bytes(MODELS_BUCKET, "another-model/config.json",
                                                  b"{}")

    before = versions(lab)
    result = run_drill(inventory, DrillRequest(ArtifactDeletion, "soft", ASSET, tmp_path),
                       overrides={"pull": pull_and_stray}, progress=print)
    ev = result.evidence
    assert ev.verdict is Verdict.FAIL
    assert any("outside the drill's declared blast radius" in r for r in ev.reasons), ev.reasons
    assert S3Store(lab.operator_target()).list_keys(MODELS_BUCKET, "another-model/") == []
    assert ev.reverted and versions(lab) == before


def test_dry_runs_leave_no_object_and_no_dump(lab: Lab, inventory: Inventory,
                                              tmp_path: Path) -> None:
    store = S3Store(lab.operator_target())
    safety_before = store.list_keys(inventory.safety_bucket, "")
    db = PostgresServer(lab.root).db()
    tables = db.table_states(ANNOTATIONS_DB)
    before = versions(lab)
    root = tmp_path / "ev"
    for args in (["artifact-deletion", "--variant", "purge", "--asset", ASSET],
                 ["artifact-deletion", "--variant", "soft", "--asset", ASSET],
                 ["annotation-db-loss"]):
        proc = cli(lab, *args, "--dry-run", "--evidence-dir", str(root))
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "dry run" in proc.stdout
    assert store.list_keys(inventory.safety_bucket, "") == safety_before
    assert sorted(p.name for p in root.rglob("*.dump")) == []
    assert versions(lab) == before and db.table_states(ANNOTATIONS_DB) == tables
    evidence = sorted(root.glob("*/evidence.json"))
    assert len(evidence) == 3  # each dry run still leaves its evidence
