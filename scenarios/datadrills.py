"""Shared pieces of the data drills: restore points, loss accounting, backup jobs, store errors.

- :func:`record_loss`: evidence ``sections["loss"]``: the restore point used (time, identity),
  the RPO and its definition (as the verdict states it), what was lost (object versions and files written after
  it, counted), met or missed against the inventory's RPO target.
- :func:`backup_job_for` / :func:`replication_job_for`: the inventory's job that protects an asset.
- :func:`classify_store_error`: what the store refused, from the error text it returned.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from harness.blast import Touch, TouchKind
from harness.context import DrillContext
from harness.errors import GuardRefused, Inconclusive, StepFailed, TargetUnreachable
from harness.guards import require_drill_safe
from harness.integrity import sha256_stream
from harness.inventory import Asset, Inventory, JobTarget
from harness.model import (
    RestorePoint,
    event_by_name,
    iso,
    measure_rpo,
)
from harness.scenario import Scenario
from harness.targets.job import Job
from harness.targets.restic import ResticRepo, Snapshot
from harness.targets.rgwadmin import RgwAdmin

#: What a store's error text says was refused -> the runbook's name for it.
STORE_ERRORS = (
    ("QuotaExceeded", "quota-exceeded"),
    ("UserSuspended", "user-suspended"),
    ("InvalidAccessKeyId", "key-revoked"),
    ("does not exist in our records", "key-revoked"),
    ("SignatureDoesNotMatch", "wrong-secret"),
    ("AccessDenied", "access-denied"),
    ("Access Denied", "access-denied"),
)


def classify_store_error(text: str) -> str | None:
    for needle, kind in STORE_ERRORS:
        if needle in text:
            return kind
    return None


def injected_at(ctx: DrillContext) -> datetime:
    ev = event_by_name(ctx.journal.events, "fault.injected")
    if ev is None:
        raise Inconclusive("no fault.injected event: nothing to measure against")
    return ev.utc


def record_loss(ctx: DrillContext, point: RestorePoint,
                newer: Iterable[tuple[str, datetime]], **extra: Any) -> None:
    """Evidence of what restoring ``point`` loses. ``newer`` lists (key, written) object versions
    in the blast radius: for a point-in-time copy, every version at baseline (those written after
    the point are lost); for continuous protection (``point.continuous``), exactly the writes the
    restore does not bring back. The RPO is :func:`~harness.model.measure_rpo`'s, so the section
    and the verdict state the same number and the same definition."""
    t0 = injected_at(ctx)
    target = ctx.inventory.objectives_for(ctx.asset).rpo_s
    m = measure_rpo(ctx.journal.events, point)
    lost = sorted((k, w) for k, w in newer if point.continuous or w > point.created)
    ctx.findings.sections["loss"] = {
        "restore_point": {"kind": point.kind, "identity": point.identity,
                          "created_utc": iso(point.created), "location": point.location},
        "injected_utc": iso(t0),
        "rpo_definition": point.rpo_definition.value,
        "rpo_s": None if m.seconds is None else round(m.seconds, 3),
        **({} if m.error is None else {"rpo_error": m.error}),
        "rpo_target_s": target,
        "rpo_met": None if m.seconds is None else m.seconds <= target,
        "lost_versions": len(lost),
        "lost_files": len({k for k, _ in lost}),
        "lost": [{"key": k, "written_utc": iso(w)} for k, w in lost[:50]],
        **extra,
    }


def _job_for(inventory: Inventory, role: str, asset: Asset) -> JobTarget | None:
    for job in inventory.jobs(role):
        if role == "backup" and job.repository is not None and job.repository == asset.backup:
            return job
        if role == "replication" and job.replica_bucket is not None:
            return job
    return None


def backup_job_for(ctx: DrillContext) -> JobTarget:
    job = _job_for(ctx.inventory, "backup", ctx.asset)
    if job is None:
        raise Inconclusive(f"no backup job in the inventory writes {ctx.asset.backup!r}, the "
                           f"backup of {ctx.asset.id}: nothing to drill")
    return job


def replication_job_for(ctx: DrillContext) -> JobTarget:
    job = _job_for(ctx.inventory, "replication", ctx.asset)
    if job is None or job.replica_store is None:
        raise Inconclusive("no replication job with a replica_store and replica_bucket in the "
                           "inventory: nothing to drill")
    return job


def has_job(inventory: Inventory, role: str, asset: Asset) -> bool:
    return _job_for(inventory, role, asset) is not None


class BackupJobDrill(Scenario):
    """A fault on the backup path (not on the asset): the asset's scheduled backups start failing.

    Shared by ``credential-expiry`` and ``storage-full``: the preflight proves the job works and
    has made a restore point; detection is the job's own next run failing with a store error of
    the expected kind; the runbook ends by re-running the job and proving the new snapshot holds
    the asset as it is in the store; verification waits for the job's next *scheduled* run to
    succeed too. Evidence ``sections["backup"]``: how long backups were blind, the runs that
    failed meanwhile, and how far the RPO exposure grew.
    """

    destructive: ClassVar[bool] = True
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights", "lora-adapter", "pipeline-config",
                                              "dataset")
    expected_error: ClassVar[tuple[str, ...]] = ()

    job_target: JobTarget
    last_good: Snapshot
    failure: str = ""
    rerun_at: datetime | None = None
    new_snapshot: Snapshot | None = None

    @property
    def job(self) -> Job:
        return self.ctx.adapters.job(self.job_target.name)

    @property
    def repo(self) -> ResticRepo:
        assert self.ctx.asset.backup is not None
        return self.ctx.adapters.restic(self.ctx.asset.backup)

    @property
    def admin(self) -> RgwAdmin:
        if self.job_target.admin is None:
            raise Inconclusive(f"job {self.job_target.name} names no rgw-admin target")
        return self.ctx.adapters.rgw_admin(self.job_target.admin)

    @classmethod
    def applies_to(cls, inventory: Inventory, asset: Asset) -> bool:
        return super().applies_to(inventory, asset) and has_job(inventory, "backup", asset)

    def touches(self) -> list[Touch]:
        """The backup job (stopped, re-run) and what the fault changes on the admin target."""
        job = backup_job_for(self.ctx)
        return [Touch(job.name, TouchKind.JOB, job.name), *self.admin_touches(job)]

    def admin_touches(self, job: JobTarget) -> list[Touch]:
        """What the fault changes through the job's admin target (an account, a quota)."""
        return []

    def preflight(self) -> None:
        a = self.ctx.asset
        self.job_target = backup_job_for(self.ctx)
        if self.job_target.admin is None or not self.job_target.drill_safe:
            raise GuardRefused(f"job {self.job_target.name} is not drill_safe or names no admin")
        require_drill_safe(self.ctx.inventory, self.job_target.admin)
        last = self.job.last_success()
        if last is None:
            raise Inconclusive(f"the backup job {self.job_target.name} has never succeeded")
        assert a.backup_path is not None
        snaps = self.repo.snapshots(path=a.backup_path)
        if not snaps:
            raise Inconclusive(f"no restore point: no snapshot of {a.backup_path}")
        self.last_good = snaps[-1]

    def detect(self) -> bool:
        t0 = injected_at(self.ctx)
        for run in self.job.runs_since(t0):
            if not run.ok:
                kind = classify_store_error(run.error)
                self.failure = run.error
                self.ctx.event("backup.run.failed", error=run.error[:300],
                               store_error=kind or "unrecognised")
                return True
            # a run that started after the fault and succeeded: the fault did not bite
            self.ctx.event("backup.run.succeeded-after-fault", snapshot=run.snapshot)
        return False

    def record_restore_point(self) -> None:
        """The restore point that protected the asset while backups were blind."""
        a = self.ctx.asset
        assert a.backup_path is not None
        t0 = injected_at(self.ctx)
        before = [s for s in self.repo.snapshots(path=a.backup_path) if s.time <= t0]
        snap = before[-1] if before else self.last_good
        point = RestorePoint("restic-snapshot", snap.id, snap.time, self.repo.target.repository)
        self.ctx.findings.restore_point = point
        record_loss(self.ctx, point, [])

    def classify(self) -> None:
        kind = classify_store_error(self.failure)
        self.ctx.event("backup.error.classified", store_error=kind or "unrecognised")
        if kind not in self.expected_error:
            raise StepFailed(f"the backup failed with {kind or 'an unrecognised error'} "
                             f"({self.failure[:200]}); this runbook handles "
                             f"{', '.join(self.expected_error)}")

    def rerun_backup(self) -> None:
        self.rerun_at = self.ctx.clock.utc()
        try:
            self.job.run_once(timeout_s=self.ctx.inventory.step_timeout_s)
        except TargetUnreachable as exc:
            raise StepFailed(f"the backup still fails: {exc}") from exc
        runs = [r for r in self.job.runs_since(self.rerun_at) if r.ok and r.snapshot]
        if not runs:
            raise StepFailed("the backup job reported success but recorded no snapshot")
        snap_id = runs[-1].snapshot
        assert snap_id is not None
        found = [s for s in self.repo.snapshots() if s.id.startswith(snap_id)]
        if not found:
            raise StepFailed(f"snapshot {snap_id} is not in {self.repo.target.repository}")
        self.new_snapshot = found[-1]
        self.ctx.event("backup.run.succeeded", snapshot=self.new_snapshot.id,
                       snapshot_utc=iso(self.new_snapshot.time))

    def verify_snapshot(self) -> None:
        """The new snapshot holds every object of the asset exactly as the store has it now."""
        # the repository is readable again: now the restore point that covered the blind
        # window can be listed
        self.record_restore_point()
        a = self.ctx.asset
        assert self.new_snapshot is not None and a.backup_path is not None
        store = self.ctx.adapters.s3(a.store)
        keys = store.list_keys(a.bucket, a.prefix)
        in_store = store.hash_objects(a.bucket, [(k, None) for k in keys])
        in_snap: dict[str, str] = {}
        with self.repo.dump_tree(self.new_snapshot.id, a.backup_path) as files:
            for rel, stream in files:
                in_snap[a.prefix + rel] = sha256_stream(stream)[0]
        bad = [k for k in keys if in_snap.get(k) != in_store[k][0]]
        for k in keys[:200]:
            self.ctx.integrity(f"snapshot:{k}", str(in_store[k][0]), in_snap.get(k))
        if bad:
            raise StepFailed(f"{len(bad)} of {len(keys)} objects differ in the new snapshot")

    def verify(self) -> None:
        """The job's next *scheduled* run succeeds with what the runbook left configured."""
        if self.rerun_at is None:
            return  # the runbook stopped before the re-run: its failure is already recorded
        after = self.ctx.clock.utc()
        deadline = self.ctx.clock.mono() + 2 * self.job_target.period_s + 60
        while self.ctx.clock.mono() < deadline:
            runs = [r for r in self.job.runs() if r.started >= after]
            if runs:
                run = runs[0]
                if not run.ok:
                    self.ctx.fail(f"the next scheduled backup failed: {run.error[:200]}")
                self._blind_evidence(run.ended if run.ok else None)
                return
            self.ctx.clock.sleep(0.5)
        self.ctx.inconclusive("the backup job did not run on schedule after recovery")

    def _blind_evidence(self, scheduled_ok: datetime | None) -> None:
        t0 = injected_at(self.ctx)
        runs = self.job.runs_since(t0)
        failed = [r for r in runs if not r.ok]
        first_ok = next((r for r in runs if r.ok), None)
        blind_until = first_ok.ended if first_ok is not None else None
        self.ctx.findings.sections["backup"] = {
            "job": self.job_target.name, "period_s": self.job_target.period_s,
            "last_good_before_fault": {"snapshot": self.last_good.id,
                                       "utc": iso(self.last_good.time)},
            "failed_runs": len(failed),
            "errors": sorted({r.error[:160] for r in failed}),
            "blind_s": None if blind_until is None else
            round((blind_until - t0).total_seconds(), 3),
            "rpo_exposure_at_fault_s": round((t0 - self.last_good.time).total_seconds(), 3),
            "rpo_exposure_max_s": None if blind_until is None else
            round((blind_until - self.last_good.time).total_seconds(), 3),
            "new_snapshot": None if self.new_snapshot is None else self.new_snapshot.id,
            "next_scheduled_run_ok_utc": None if scheduled_ok is None else iso(scheduled_ok),
        }
        loss = self.ctx.findings.sections.get("loss")
        if loss is not None:
            loss["restore_points_missed"] = len(failed)
