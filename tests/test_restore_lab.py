"""The restore pipeline against the real lab: a purge drill restores through it and PASSes, with
the kind of restore-point proof in the journal; a pull that puts the wrong bytes back FAILs; the
store's free space is read from the cluster; a drill refuses when the store lacks room."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.capacity import store_free_bytes
from harness.context import DrillContext
from harness.inventory import Inventory, load_inventory
from harness.model import Verdict
from harness.restore import RestoreTuning, restore_to_store
from harness.runbook.object_state import ObjectState, backup_rels
from harness.runner import DrillRequest, DrillResult, StepOverride, run_drill
from harness.targets.s3 import S3Store
from lab.stack import MODEL_NAME, MODELS_BUCKET, Lab
from reports.render import write_evidence
from scenarios.artifact_deletion import ArtifactDeletion

pytestmark = pytest.mark.lab

ASSET = "lab-mlp-weights"


def drill(inventory: Inventory, root: Path,
          overrides: dict[str, StepOverride] | None = None) -> DrillResult:
    result = run_drill(inventory, DrillRequest(ArtifactDeletion, "purge", ASSET, root),
                       overrides=overrides, progress=print)
    write_evidence(result.evidence, result.directory)
    return result


def journal_events(result: DrillResult, name: str) -> list[dict[str, Any]]:
    lines = (result.directory / "journal.jsonl").read_text().splitlines()
    return [r["detail"] for r in map(json.loads, lines) if r.get("event") == name]


def store_versions(lab: Lab) -> list[tuple[str, str, int, bool]]:
    store = S3Store(lab.operator_target())
    return [(v.key, v.etag, v.size, v.is_delete_marker)
            for v in store.list_versions(MODELS_BUCKET, f"{MODEL_NAME}/")]


@pytest.fixture
def inventory(lab: Lab) -> Iterator[Inventory]:
    before = store_versions(lab)
    yield load_inventory(lab.inventory_path)
    # every drill leaves the models exactly as found (same versions, same order, same ETags)
    assert store_versions(lab) == before
    assert lab.node_readiness() == "ready"


def test_purge_restores_through_the_pipeline_and_proofs_are_cached(
        lab: Lab, inventory: Inventory, evidence_root: Path) -> None:
    first = drill(inventory, evidence_root)
    assert first.evidence.verdict is Verdict.PASS, first.evidence.reasons
    (pulled,) = journal_events(first, "pull.transferred")
    assert pulled["method"] == "restore" and pulled["files"] >= 3 and pulled["bytes"] > 0
    (proven,) = journal_events(first, "restorable.proven")
    assert proven["proof"] in ("full-read", "snapshot-cache+sample1", "content-cache+sample1")
    # the same evidence root again: the snapshot's proof comes from the cache, one file re-read
    second = drill(inventory, evidence_root)
    assert second.evidence.verdict is Verdict.PASS, second.evidence.reasons
    (proven,) = journal_events(second, "restorable.proven")
    assert proven["proof"].startswith(("snapshot-cache", "content-cache"))
    assert proven["files_sampled"] == 1 and proven["files_read"] == 0


def _swapped_pull(ctx: DrillContext, original: Callable[[], None]) -> None:
    """Sabotage: the pipeline restores every file, but two shards under each other's names."""
    state: ObjectState = original.__self__.state  # type: ignore[attr-defined]
    a = ctx.asset
    assert a.backup is not None and a.backup_path is not None and state.snapshot is not None
    rels = backup_rels(ctx, state.keys)
    shards = sorted(r for r in rels if r.endswith(".safetensors"))
    mapping = dict(rels)
    mapping[shards[0]], mapping[shards[1]] = rels[shards[1]], rels[shards[0]]
    report = restore_to_store(ctx.adapters.restic(a.backup), state.snapshot.id, a.backup_path,
                              mapping, ctx.adapters.s3(a.store), a.bucket,
                              tuning=RestoreTuning(files=2))
    state.pulled = report.hashes()


def test_a_pull_that_restores_the_wrong_bytes_fails(lab: Lab, inventory: Inventory,
                                                    evidence_root: Path) -> None:
    result = drill(inventory, evidence_root, {"pull": _swapped_pull})
    ev = result.evidence
    assert ev.verdict is Verdict.FAIL
    assert any("verify-sha256" in r for r in ev.reasons), ev.reasons
    assert ev.reverted


def test_free_space_of_the_lab_store_comes_from_the_cluster(lab: Lab,
                                                            inventory: Inventory) -> None:
    space = store_free_bytes(inventory, "artifact-store")
    assert space.free_bytes is not None and 0 < space.free_bytes < space.total_bytes
    assert space.source.startswith("ceph")


def test_a_store_without_room_for_the_safety_copy_is_inconclusive_and_untouched(
        lab: Lab, inventory: Inventory, evidence_root: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRILLBOOK_STORE_RESERVE_BYTES", str(2**60))
    ev = drill(inventory, evidence_root).evidence
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("room for the safety copy" in r for r in ev.reasons), ev.reasons
    assert not any(t.event == "fault.injected" for t in ev.timeline)
