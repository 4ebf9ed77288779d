"""Database drills against the real lab (PostgreSQL, MLflow, dumps on RGW): both scenarios pass
and count what was written after the last dump; restoring a stale dump fails; PostgreSQL or MLflow
stopped is inconclusive and drops nothing; after every drill the lab is as it was found."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.context import DrillContext
from harness.inventory import Inventory, load_inventory
from harness.model import Verdict
from harness.runbook.database import DbState, dump_catalog, fault_time, use_dump
from harness.runner import DrillRequest, DrillResult, StepOverride, run_drill
from harness.scenario import Scenario
from harness.targets.database import Database, TableState
from lab.postgres import (
    ANNOTATIONS_ASSET,
    ANNOTATIONS_DB,
    ANNOTATOR_ROLE,
    PostgresServer,
    backup_database,
    write_annotations,
)
from lab.registry import REGISTRY_ASSET, REGISTRY_DB, RegistryComponent, registry_change
from lab.stack import Lab
from reports.render import write_evidence
from scenarios.annotation_db_loss import AnnotationDbLoss
from scenarios.registry_loss import RegistryLoss

pytestmark = pytest.mark.lab


@dataclass(frozen=True)
class Found:
    """What the lab's databases and registry hold, to prove a drill left them as found."""

    annotations: dict[str, TableState]
    registry_db: dict[str, TableState]
    registry: frozenset[str]


def found(lab: Lab) -> Found:
    db = PostgresServer(lab.root).db()
    return Found(db.table_states(ANNOTATIONS_DB), db.table_states(REGISTRY_DB),
                 frozenset(RegistryComponent().client(lab).view()))


def drill(inventory: Inventory, cls: type[Scenario], asset: str, root: Path,
          overrides: dict[str, StepOverride] | None = None) -> DrillResult:
    result = run_drill(inventory, DrillRequest(cls, "drop", asset, root), overrides=overrides,
                       progress=print)
    write_evidence(result.evidence, result.directory)
    return result


def stale_dump(ctx: DrillContext, original: Callable[[], None]) -> None:
    """Sabotage: restore the second-newest dump made before the fault, not the newest."""
    state: DbState = original.args[1]  # type: ignore[attr-defined]  # the step's (ctx, state)
    t0 = fault_time(ctx)
    before = [r for r in dump_catalog(ctx).records() if r.created < t0]
    assert len(before) >= 2
    use_dump(ctx, state, before[-2])


@pytest.fixture
def inventory(lab: Lab) -> Iterator[Inventory]:
    yield load_inventory(lab.inventory_path)


@pytest.fixture
def annotator(lab: Lab) -> Database:
    return PostgresServer(lab.root).db(ANNOTATOR_ROLE)


def test_annotation_db_loss_restores_newest_dump_and_counts_lost_annotations(
        lab: Lab, inventory: Inventory, annotator: Database, evidence_root: Path) -> None:
    dump = backup_database(lab, ANNOTATIONS_DB)
    late = write_annotations(annotator, 5, tag="pass")
    before = found(lab)
    result = drill(inventory, AnnotationDbLoss, ANNOTATIONS_ASSET, evidence_root)
    ev = result.evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert ev.rto.met is True and ev.rto.measured_s is not None and ev.rto.measured_s > 0
    assert ev.restore_point is not None and ev.restore_point.kind == "pg-dump"
    assert ev.restore_point.identity == dump.identity
    assert ev.restore_point.created == dump.created
    injected = next(t for t in ev.timeline if t.event == "fault.injected")
    assert ev.rpo.measured_s == pytest.approx((injected.utc - dump.created).total_seconds(),
                                              abs=1e-3)
    loss = ev.sections["loss"]
    assert loss["rows_lost"] == len(late) == ev.restore_point.newer_versions_lost
    assert loss["annotations_lost"] == loss["annotations_written_after_dump"] == len(late)
    assert loss["tables"]["labels"]["lost_keys"] == sorted(str(i) for i in late)
    assert loss["tables"]["items"]["lost"] == 0
    assert [s.name for s in ev.steps if s.phase.value == "runbook"] == [
        "locate-restore-point", "pull", "restore", "verify-tables"]
    assert ev.integrity and all(c.ok for c in ev.integrity)
    assert any(t.event == "restorable.proven" for t in ev.timeline)
    assert ev.reverted
    # revert put the safety copy back: the late annotations are there again
    assert found(lab) == before


def test_annotation_db_restored_from_a_stale_dump_fails(
        lab: Lab, inventory: Inventory, annotator: Database, evidence_root: Path) -> None:
    backup_database(lab, ANNOTATIONS_DB)
    write_annotations(annotator, 2, tag="stale-a")
    backup_database(lab, ANNOTATIONS_DB)
    write_annotations(annotator, 3, tag="stale-b")
    before = found(lab)
    ev = drill(inventory, AnnotationDbLoss, ANNOTATIONS_ASSET, evidence_root,
               {"locate-restore-point": stale_dump}).evidence
    assert ev.verdict is Verdict.FAIL
    assert any("newer one made before the fault" in r for r in ev.reasons), ev.reasons
    assert any("does not hold the newest restore point" in r for r in ev.reasons), ev.reasons
    assert ev.sections["loss"]["rows_lost"] == 5  # measured against the newest dump's own window
    assert ev.rto.measured_s is None
    assert ev.reverted
    assert found(lab) == before


def test_postgres_stopped_is_inconclusive_and_drops_nothing(
        lab: Lab, inventory: Inventory, evidence_root: Path) -> None:
    before = found(lab)
    server = PostgresServer(lab.root)
    server.stop()
    try:
        ev = drill(inventory, AnnotationDbLoss, ANNOTATIONS_ASSET, evidence_root).evidence
    finally:
        server.start()
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("unreachable" in r for r in ev.reasons), ev.reasons
    assert not any(t.event == "fault.injected" for t in ev.timeline)
    assert RegistryComponent().client(lab).wait_ready(30) is None
    assert found(lab) == before


def test_registry_loss_restores_models_versions_aliases_and_counts_lost_changes(
        lab: Lab, inventory: Inventory, evidence_root: Path) -> None:
    registry = RegistryComponent().client(lab)
    dump = backup_database(lab, REGISTRY_DB)
    changes = registry_change(registry, "pass")
    before = found(lab)
    result = drill(inventory, RegistryLoss, REGISTRY_ASSET, evidence_root)
    ev = result.evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert ev.restore_point is not None and ev.restore_point.identity == dump.identity
    assert ev.rpo.met is True and ev.rto.met is True
    loss = ev.sections["loss"]
    assert loss["registry_changes_lost"] == changes
    assert loss["registry_changes_lost_by_kind"] == {"model-tag": 1, "version-tag": 1, "alias": 1}
    assert "alias lab-mlp@candidate-pass -> 1" in loss["registry_changes_lost_entries"]
    assert loss["registry_entries_unknown"] == []
    # everything older than the dump came back: models, versions, stages, aliases, metrics
    assert ev.smoke["registry_entries_matching_baseline"] == \
        ev.smoke["registry_entries_baseline"] - changes
    assert {"stage lab-mlp/2 Production", "alias lab-mlp@champion -> 2",
            "metric lab-mlp/2 accuracy=0.947"} <= set(before.registry)
    assert [s.name for s in ev.steps if s.phase.value == "runbook"][-2:] == [
        "reconnect-registry", "smoke-test"]
    assert ev.reverted
    assert found(lab) == before


def test_registry_restored_from_a_stale_dump_fails(
        lab: Lab, inventory: Inventory, evidence_root: Path) -> None:
    registry = RegistryComponent().client(lab)
    backup_database(lab, REGISTRY_DB)
    registry_change(registry, "stale-a")
    backup_database(lab, REGISTRY_DB)
    registry_change(registry, "stale-b")
    before = found(lab)
    ev = drill(inventory, RegistryLoss, REGISTRY_ASSET, evidence_root,
               {"locate-restore-point": stale_dump}).evidence
    assert ev.verdict is Verdict.FAIL
    assert any("newer one made before the fault" in r for r in ev.reasons), ev.reasons
    assert ev.sections["loss"]["registry_changes_lost"] == 6
    assert ev.reverted
    assert found(lab) == before


def test_mlflow_stopped_is_inconclusive_and_drops_nothing(
        lab: Lab, inventory: Inventory, evidence_root: Path) -> None:
    before = found(lab)
    component = RegistryComponent()
    component.stop(lab)
    t0 = time.monotonic()
    try:
        ev = drill(inventory, RegistryLoss, REGISTRY_ASSET, evidence_root).evidence
        db_after = PostgresServer(lab.root).db().table_states(REGISTRY_DB)
    finally:
        component.start(lab)
    print(f"MLflow restart took {time.monotonic() - t0:.1f} s")
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("unreachable" in r for r in ev.reasons), ev.reasons
    assert not any(t.event == "fault.injected" for t in ev.timeline)
    assert db_after == before.registry_db
    assert found(lab) == before


def test_database_not_drill_safe_is_refused(lab: Lab, evidence_root: Path,
                                            tmp_path: Path) -> None:
    doc = yaml.safe_load(lab.inventory_path.read_text())
    doc["targets"]["postgres"]["drill_safe"] = False
    for a in doc["assets"]:
        if a.get("golden"):
            a["golden"] = str(lab.root / a["golden"])
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(doc))
    before = found(lab)
    ev = drill(load_inventory(path), AnnotationDbLoss, ANNOTATIONS_ASSET, evidence_root).evidence
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("drill_safe" in r for r in ev.reasons), ev.reasons
    assert not any(t.event == "fault.injected" for t in ev.timeline)
    assert found(lab) == before
