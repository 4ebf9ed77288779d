"""Lab-free unit tests of the data scenarios (annotation-db-loss, registry-loss, credential-expiry,
storage-full, replication-break) on in-memory fakes and a manual clock: a correct recovery
passes, a sabotaged one fails, a missing restore point is inconclusive, and an exception in the
runbook still reverts the target to how it was found."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from job_site import KEY, UID, JobSite, job_site
from scenario_kit import (  # noqa: F401 - provenance_once is an autouse fixture
    START,
    drill,
    provenance_once,
    raises,
    skip,
    state_of,
    step_names,
    unit_inventory,
)

from harness.context import DrillContext
from harness.fakes.database import FakeDatabase
from harness.fakes.registry import FakeRegistry
from harness.fakes.store import FakeStore
from harness.inventory import Inventory
from harness.journal import ManualClock
from harness.model import Verdict
from harness.runbook.database import dump_catalog, fault_time, use_dump
from harness.targets.database import DumpCatalog, DumpRecord
from harness.targets.rgwadmin import Quota
from scenarios.annotation_db_loss import AnnotationDbLoss
from scenarios.credential_expiry import CredentialExpiry
from scenarios.registry_loss import RegistryLoss
from scenarios.replication_break import ReplicationBreak
from scenarios.storage_full import StorageFull

ANNOTATIONS, REGISTRY, DATASET = "annotations-db", "lab-mlp-registry", "lab-dataset"
BACKUP_BUCKET = "drillbook-secondary"
ORIGINAL_CREDENTIALS = (f"[default]\naws_access_key_id = {KEY}\n"
                        f"aws_secret_access_key = backup-secret-0\n").encode()


@dataclass
class DbSite:
    inventory: Inventory
    clock: ManualClock
    pg: FakeDatabase
    dumps: FakeStore
    registry: FakeRegistry
    root: Path

    @property
    def adapters(self) -> dict[str, object]:
        return {"postgres": self.pg, "dump-store": self.dumps, "mlflow": self.registry}

    def backup(self, asset: str) -> DumpRecord:
        """What the site's dump job does: pg_dump, published with its manifest."""
        a = self.inventory.assets[asset]
        assert a.database is not None
        info = self.pg.dump(a.database, self.root / "job" / f"{self.clock.mono()}.dump")
        rec = DumpCatalog(self.dumps, a.bucket, a.prefix).publish(info)
        self.clock.advance(5)
        return rec

    def label(self, key: str, text: str) -> None:
        self.pg.put_row("annotations", "labels", key, {"text": text,
                                                        "created_at": self.clock.utc()})
        self.clock.advance(1)

    def found(self) -> tuple[object, ...]:
        return (self.pg.table_states("annotations"), self.pg.table_states("mlflow"),
                frozenset(self.registry.view()))


@pytest.fixture
def site(tmp_path: Path) -> DbSite:
    clock = ManualClock(START)
    inv = unit_inventory(tmp_path)
    pg = FakeDatabase("postgres", clock)
    pg.create_database("annotations", "annotator", {
        "items": {str(i): {"uri": f"s3://data/{i}.jpg"} for i in range(5)}, "labels": {}})
    pg.create_database("mlflow", "mlflow", {"registered_models": {}, "model_versions": {},
                                            "metrics": {}})
    registry = FakeRegistry(inv.mlflow("mlflow"), pg, "mlflow")
    registry.add_model("lab-mlp", 1000, tags={"team": "ml"}, aliases={"champion": "2"})
    registry.add_version("lab-mlp", "1", 1000, metrics={"accuracy": 0.9})
    registry.add_version("lab-mlp", "2", 2000, stage="Production", metrics={"accuracy": 0.947})
    dumps = FakeStore(inv.s3("dump-store"), now=clock.utc)
    dumps.create_bucket(BACKUP_BUCKET)
    s = DbSite(inv, clock, pg, dumps, registry, tmp_path)
    for i in range(3):
        s.label(f"{i}", f"cat {i}")
    return s


def stale_dump(ctx: DrillContext, original: Callable[[], None]) -> None:
    """Sabotage: restore the second-newest dump made before the fault, not the newest."""
    before = [r for r in dump_catalog(ctx).records() if r.created < fault_time(ctx)]
    use_dump(ctx, state_of(original), before[-2])


# -- annotation-db-loss ----------------------------------------------------------------------------


def test_annotation_db_loss_passes_and_counts_the_annotations_written_after_the_dump(
        site: DbSite) -> None:
    dump = site.backup(ANNOTATIONS)
    site.label("late-1", "dog")
    site.label("late-2", "bird")
    before = site.found()
    ev = drill(site.inventory, AnnotationDbLoss, "drop", ANNOTATIONS, site.adapters, site.clock,
               site.root)
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert ev.restore_point is not None and ev.restore_point.identity == dump.identity
    assert ev.restore_point.newer_versions_lost == 2
    loss = ev.sections["loss"]
    assert loss["rows_lost"] == 2 and loss["annotations_written_after_dump"] == 2
    assert loss["tables"]["labels"]["lost_keys"] == ["late-1", "late-2"]
    assert step_names(ev) == ["locate-restore-point", "pull", "restore", "verify-tables"]
    assert ev.integrity and all(c.ok for c in ev.integrity)
    assert ev.rpo.measured_s == pytest.approx(
        (next(t.utc for t in ev.timeline if t.event == "fault.injected")
         - dump.created).total_seconds(), abs=1e-6)
    assert ev.reverted and site.found() == before  # the late annotations are back


def test_annotation_db_restored_from_a_stale_dump_fails(site: DbSite) -> None:
    site.backup(ANNOTATIONS)
    site.label("between", "dog")
    site.backup(ANNOTATIONS)
    before = site.found()
    ev = drill(site.inventory, AnnotationDbLoss, "drop", ANNOTATIONS, site.adapters, site.clock,
               site.root, {"locate-restore-point": stale_dump})
    assert ev.verdict is Verdict.FAIL
    assert any("newer one made before the fault" in r for r in ev.reasons), ev.reasons
    assert any("does not hold the newest restore point" in r for r in ev.reasons), ev.reasons
    assert ev.reverted and site.found() == before


def test_annotation_db_without_a_dump_is_inconclusive_and_drops_nothing(site: DbSite) -> None:
    before = site.found()
    ev = drill(site.inventory, AnnotationDbLoss, "drop", ANNOTATIONS, site.adapters, site.clock,
               site.root)
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("no restore point" in r for r in ev.reasons), ev.reasons
    assert not any(t.event == "fault.injected" for t in ev.timeline)
    assert site.found() == before


def test_annotation_db_server_down_is_inconclusive(site: DbSite) -> None:
    site.backup(ANNOTATIONS)
    site.pg.running = False
    ev = drill(site.inventory, AnnotationDbLoss, "drop", ANNOTATIONS, site.adapters, site.clock,
               site.root)
    site.pg.running = True
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("unreachable" in r for r in ev.reasons), ev.reasons
    assert site.pg.exists("annotations")


def test_annotation_db_exception_in_the_runbook_still_reverts(site: DbSite) -> None:
    site.backup(ANNOTATIONS)
    site.label("late", "dog")
    before = site.found()
    ev = drill(site.inventory, AnnotationDbLoss, "drop", ANNOTATIONS, site.adapters, site.clock,
               site.root, {"restore": raises(RuntimeError("connection reset"))})
    assert ev.verdict is Verdict.FAIL
    assert any("restore" in r and "connection reset" in r for r in ev.reasons), ev.reasons
    assert any(t.event == "revert.restored-from-safety-copy" for t in ev.timeline)
    assert ev.reverted and site.found() == before


def test_annotation_db_drill_writes_nothing_outside_its_database(site: DbSite) -> None:
    """The fence: a step that drops another database on the same server is refused."""
    site.backup(ANNOTATIONS)

    def drop_the_registry(ctx: DrillContext, original: Callable[[], None]) -> None:
        site.pg.drop("mlflow")

    before = site.found()
    ev = drill(site.inventory, AnnotationDbLoss, "drop", ANNOTATIONS, site.adapters, site.clock,
               site.root, {"restore": drop_the_registry})
    assert ev.verdict is Verdict.FAIL
    assert any("outside the drill's declared blast radius" in r for r in ev.reasons), ev.reasons
    assert site.pg.exists("mlflow") and ev.reverted and site.found() == before


# -- registry-loss -----------------------------------------------------------------------------------


def test_registry_loss_passes_and_counts_the_registry_changes_lost(site: DbSite) -> None:
    dump = site.backup(REGISTRY)
    site.registry.set_alias("lab-mlp", "candidate", "1")
    before = site.found()
    ev = drill(site.inventory, RegistryLoss, "drop", REGISTRY, site.adapters, site.clock,
               site.root)
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert ev.restore_point is not None and ev.restore_point.identity == dump.identity
    loss = ev.sections["loss"]
    assert loss["registry_changes_lost"] == 1
    assert loss["registry_changes_lost_entries"] == ["alias lab-mlp@candidate -> 1"]
    assert loss["registry_entries_unknown"] == []
    assert ev.smoke["passed"] is True and ev.smoke["registered_models"] == 1
    assert step_names(ev)[-2:] == ["reconnect-registry", "smoke-test"]
    assert ev.reverted and site.found() == before


def test_registry_restored_from_a_stale_dump_fails(site: DbSite) -> None:
    site.backup(REGISTRY)
    site.registry.add_version("lab-mlp", "3", 3000, metrics={"accuracy": 0.95})
    site.backup(REGISTRY)
    before = site.found()
    ev = drill(site.inventory, RegistryLoss, "drop", REGISTRY, site.adapters, site.clock,
               site.root, {"locate-restore-point": stale_dump})
    assert ev.verdict is Verdict.FAIL
    assert any("newer one made before the fault" in r for r in ev.reasons), ev.reasons
    assert ev.reverted and site.found() == before


def test_registry_without_a_dump_is_inconclusive(site: DbSite) -> None:
    ev = drill(site.inventory, RegistryLoss, "drop", REGISTRY, site.adapters, site.clock,
               site.root)
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("no restore point" in r for r in ev.reasons), ev.reasons
    assert site.pg.exists("mlflow")


def test_registry_not_answering_after_the_restore_fails_and_reverts(site: DbSite) -> None:
    site.backup(REGISTRY)
    before = site.found()

    def registry_stays_down(ctx: DrillContext, original: Callable[[], None]) -> None:
        site.registry.running = False
        try:
            original()
        finally:
            site.registry.running = True

    ev = drill(site.inventory, RegistryLoss, "drop", REGISTRY, site.adapters, site.clock,
               site.root, {"reconnect-registry": registry_stays_down})
    assert ev.verdict is Verdict.FAIL
    assert any("reconnect-registry" in r and "does not answer" in r for r in ev.reasons)
    assert ev.reverted and site.found() == before


def test_registry_exception_in_the_runbook_still_reverts(site: DbSite) -> None:
    site.backup(REGISTRY)
    before = site.found()
    ev = drill(site.inventory, RegistryLoss, "drop", REGISTRY, site.adapters, site.clock,
               site.root, {"pull": raises(OSError("disk full"))})
    assert ev.verdict is Verdict.FAIL
    assert ev.reverted and site.found() == before


# -- credential-expiry -------------------------------------------------------------------------------


@pytest.fixture
def jobs(tmp_path: Path) -> JobSite:
    return job_site(tmp_path)


@pytest.mark.parametrize("variant", ["revoked", "suspended"])
def test_credential_expiry_rotates_the_key_and_backups_resume(jobs: JobSite, variant: str) -> None:
    ev = drill(jobs.inventory, CredentialExpiry, variant, DATASET, jobs.adapters, jobs.clock,
               jobs.root)
    assert ev.verdict is Verdict.PASS, ev.reasons
    backup = ev.sections["backup"]
    assert backup["failed_runs"] >= 1 and backup["blind_s"] > 0
    assert backup["rpo_exposure_max_s"] > backup["rpo_exposure_at_fault_s"]
    expected = "UserSuspended" if variant == "suspended" else "InvalidAccessKeyId"
    assert any(expected in e for e in backup["errors"]), backup["errors"]
    assert ev.sections["credentials"].to_json() == {"uid": UID, "variant": variant, "rotated": True,
                                          "configured_key": "accepted", "old_key": "InvalidAccessKeyId"}
    assert ev.restore_point is not None and ev.restore_point.kind == "restic-snapshot"
    assert ev.reverted and jobs.account() == (False, frozenset({KEY}), ORIGINAL_CREDENTIALS)


def test_credential_expiry_with_the_old_key_left_configured_fails(jobs: JobSite) -> None:
    ev = drill(jobs.inventory, CredentialExpiry, "revoked", DATASET, jobs.adapters, jobs.clock,
               jobs.root, {"update-credentials": skip})
    assert ev.verdict is Verdict.FAIL
    assert any("rerun-backup" in r for r in ev.reasons), ev.reasons
    assert ev.reverted and jobs.account() == (False, frozenset({KEY}), ORIGINAL_CREDENTIALS)


def test_credential_expiry_without_a_snapshot_is_inconclusive(jobs: JobSite) -> None:
    jobs.backup_job.stop()
    jobs.restic._snaps.clear()  # the job ran before, but nothing of this asset is kept
    ev = drill(jobs.inventory, CredentialExpiry, "revoked", DATASET, jobs.adapters, jobs.clock,
               jobs.root)
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("no restore point" in r for r in ev.reasons), ev.reasons
    assert jobs.account() == (False, frozenset({KEY}), ORIGINAL_CREDENTIALS)


def test_credential_expiry_exception_in_the_runbook_still_reverts(jobs: JobSite) -> None:
    ev = drill(jobs.inventory, CredentialExpiry, "suspended", DATASET, jobs.adapters, jobs.clock,
               jobs.root, {"rotate-key": raises(RuntimeError("admin API timed out"))})
    assert ev.verdict is Verdict.FAIL
    assert ev.reverted and jobs.account() == (False, frozenset({KEY}), ORIGINAL_CREDENTIALS)


# -- storage-full ------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["raise-quota", "retention"])
def test_storage_full_backups_land_again(jobs: JobSite, variant: str) -> None:
    ev = drill(jobs.inventory, StorageFull, variant, DATASET, jobs.adapters, jobs.clock, jobs.root)
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert any("QuotaExceeded" in e for e in ev.sections["backup"]["errors"])
    cap = ev.sections["capacity"]
    if variant == "retention":
        assert cap["retention"]["snapshots_after"] < cap["retention"]["snapshots_before"]
        assert cap["retention"]["noncurrent_bytes_purged"] > 0
        assert cap["after_recovery"]["bytes"] <= cap["fault_quota"]["max_size"]
    assert ev.reverted and jobs.admin.bucket_quota(BACKUP_BUCKET) == Quota(False, -1, -1)


def test_storage_full_without_the_remedy_fails(jobs: JobSite) -> None:
    ev = drill(jobs.inventory, StorageFull, "raise-quota", DATASET, jobs.adapters, jobs.clock,
               jobs.root, {"raise-quota": skip})
    assert ev.verdict is Verdict.FAIL
    assert any("rerun-backup" in r and "QuotaExceeded" in r for r in ev.reasons), ev.reasons
    assert ev.reverted and jobs.admin.bucket_quota(BACKUP_BUCKET) == Quota(False, -1, -1)


def test_storage_full_without_a_snapshot_is_inconclusive(jobs: JobSite) -> None:
    jobs.backup_job.stop()
    jobs.restic._snaps.clear()  # the job ran before, but nothing of this asset is kept
    ev = drill(jobs.inventory, StorageFull, "retention", DATASET, jobs.adapters, jobs.clock,
               jobs.root)
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("no restore point" in r for r in ev.reasons), ev.reasons
    assert jobs.admin.bucket_quota(BACKUP_BUCKET) == Quota(False, -1, -1)


def test_storage_full_exception_in_the_runbook_still_reverts(jobs: JobSite) -> None:
    ev = drill(jobs.inventory, StorageFull, "retention", DATASET, jobs.adapters, jobs.clock,
               jobs.root, {"inspect-capacity": raises(RuntimeError("stats unavailable"))})
    assert ev.verdict is Verdict.FAIL
    assert ev.reverted and jobs.admin.bucket_quota(BACKUP_BUCKET) == Quota(False, -1, -1)
    assert jobs.backup_job.running


# -- replication-break -------------------------------------------------------------------------------


def test_replication_break_measures_the_lag_and_catches_up(jobs: JobSite) -> None:
    ev = drill(jobs.inventory, ReplicationBreak, "stopped", DATASET, jobs.adapters, jobs.clock,
               jobs.root)
    assert ev.verdict is Verdict.PASS, ev.reasons
    rep = ev.sections["replication"]
    ages = [s["last_sync_age_s"] for s in rep["lag_curve"]]
    assert max(ages) > 2 * jobs.inventory.job("replication-job").period_s
    assert rep["lag_curve"][-1]["unreplicated_writes"] == 0
    assert ev.sections["loss"]["lost_versions"] == rep["canaries_written"] > 0
    assert ev.restore_point is not None and ev.restore_point.kind == "replica-sync"
    assert ev.reverted and jobs.canaries() == [] and jobs.replication_job.running


def test_replication_not_restarted_fails(jobs: JobSite) -> None:
    ev = drill(jobs.inventory, ReplicationBreak, "stopped", DATASET, jobs.adapters, jobs.clock,
               jobs.root, {"restart-replication": skip})
    assert ev.verdict is Verdict.FAIL
    assert any("catch-up" in r for r in ev.reasons), ev.reasons
    assert ev.reverted and jobs.canaries() == [] and jobs.replication_job.running


def test_replication_that_never_succeeded_is_inconclusive(jobs: JobSite) -> None:
    jobs.replication_job.stop()
    jobs.replication_job._runs.clear()  # no successful run yet
    ev = drill(jobs.inventory, ReplicationBreak, "stopped", DATASET, jobs.adapters, jobs.clock,
               jobs.root)
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("never succeeded" in r for r in ev.reasons), ev.reasons
    assert not any(t.event == "fault.injected" for t in ev.timeline)


def test_replication_exception_in_the_runbook_still_reverts(jobs: JobSite) -> None:
    ev = drill(jobs.inventory, ReplicationBreak, "stopped", DATASET, jobs.adapters, jobs.clock,
               jobs.root, {"diagnose": raises(RuntimeError("status file unreadable"))})
    assert ev.verdict is Verdict.FAIL
    assert ev.reverted and jobs.canaries() == [] and jobs.replication_job.running
