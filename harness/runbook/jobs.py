"""Runbook steps for the jobs that protect an asset: scheduled backups and replication.

A fault on the backup path (not on the asset) makes the asset's scheduled backups fail; the
drills that make one (``credential-expiry``, ``storage-full``) share what is here, as functions
of the drill context and a :class:`BackupJobState`: the preflight proves the job works and has
made a restore point; detection is the job's own next run failing with a store error; the
runbook classifies that error, and ends by re-running the job and proving the new snapshot holds
the asset exactly as the store has it; verification waits for the job's next *scheduled* run to
succeed too. Evidence ``sections["backup"]``: how long backups were blind, the runs that failed
meanwhile, and how far the RPO exposure grew.

Also the plain helpers every data drill uses: :func:`record_loss` (evidence ``sections["loss"]``
with the RPO as the verdict states it), the inventory's job that protects an asset, and
:func:`classify_store_error`. Step factories bind ``(ctx, state)`` with ``functools.partial``, so
an override reads the state from ``original.args[1]``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from harness.blast import Touch, TouchKind
from harness.context import DrillContext
from harness.errors import GuardRefused, Inconclusive, StepFailed, TargetUnreachable
from harness.guards import require_drill_safe
from harness.integrity import sha256_stream
from harness.inventory import Asset, Inventory, JobTarget
from harness.model import RestorePoint, iso, measure_rpo
from harness.runbook.timeline import injected_at
from harness.scenario import RunbookStep
from harness.targets.protocols import BackupRepo, JobAPI, RgwAdminAPI
from harness.targets.restic import Snapshot

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


@dataclass
class BackupJobState:
    """What a backup-job drill learns in one phase and uses in a later one."""

    target: JobTarget | None = None
    #: the newest snapshot of the asset at preflight
    last_good: Snapshot | None = None
    #: the store's error text from the first run that failed after the fault
    failure: str = ""
    rerun_at: datetime | None = None
    new_snapshot: Snapshot | None = None

    @property
    def job_target(self) -> JobTarget:
        if self.target is None:
            raise Inconclusive("the backup job was not resolved (preflight did not run)")
        return self.target


# -- plain helpers ---------------------------------------------------------------------------------


def classify_store_error(text: str) -> str | None:
    for needle, kind in STORE_ERRORS:
        if needle in text:
            return kind
    return None


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


def has_job(inventory: Inventory, role: str, asset: Asset) -> bool:
    return _job_for(inventory, role, asset) is not None


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


def job(ctx: DrillContext, target: JobTarget) -> JobAPI:
    return ctx.adapters.job(target.name)


def backup_repo(ctx: DrillContext) -> BackupRepo:
    assert ctx.asset.backup is not None
    return ctx.adapters.restic(ctx.asset.backup)


def rgw_admin(ctx: DrillContext, target: JobTarget) -> RgwAdminAPI:
    if target.admin is None:
        raise Inconclusive(f"job {target.name} names no rgw-admin target")
    return ctx.adapters.rgw_admin(target.admin)


# -- a backup job drill: before the fault, and detection --------------------------------------------


def backup_job_touches(ctx: DrillContext) -> list[Touch]:
    """The backup job (stopped, re-run); the fault's own change on the admin target is the
    scenario's to add."""
    target = backup_job_for(ctx)
    return [Touch(target.name, TouchKind.JOB, target.name)]


def require_backup_job(ctx: DrillContext, state: BackupJobState) -> None:
    """Preflight: the job is drill-safe with a drill-safe admin target, has succeeded, and the
    asset has a snapshot (the restore point that covers the blind window)."""
    a = ctx.asset
    state.target = target = backup_job_for(ctx)
    if target.admin is None or not target.drill_safe:
        raise GuardRefused(f"job {target.name} is not drill_safe or names no admin")
    require_drill_safe(ctx.inventory, target.admin)
    if job(ctx, target).last_success() is None:
        raise Inconclusive(f"the backup job {target.name} has never succeeded")
    assert a.backup_path is not None
    snaps = backup_repo(ctx).snapshots(path=a.backup_path)
    if not snaps:
        raise Inconclusive(f"no restore point: no snapshot of {a.backup_path}")
    state.last_good = snaps[-1]


def backup_failed(ctx: DrillContext, state: BackupJobState) -> bool:
    """Detection: a run of the job after the fault failed (its error kept for classifying)."""
    t0 = injected_at(ctx)
    for run in job(ctx, state.job_target).runs_since(t0):
        if not run.ok:
            kind = classify_store_error(run.error)
            state.failure = run.error
            ctx.event("backup.run.failed", error=run.error[:300],
                      store_error=kind or "unrecognised")
            return True
        # a run that started after the fault and succeeded: the fault did not bite
        ctx.event("backup.run.succeeded-after-fault", snapshot=run.snapshot)
    return False


# -- the recovery -------------------------------------------------------------------------------------


def _classify(ctx: DrillContext, state: BackupJobState, expected: tuple[str, ...]) -> None:
    kind = classify_store_error(state.failure)
    ctx.event("backup.error.classified", store_error=kind or "unrecognised")
    if kind not in expected:
        raise StepFailed(f"the backup failed with {kind or 'an unrecognised error'} "
                         f"({state.failure[:200]}); this runbook handles {', '.join(expected)}")


def classify_error_step(ctx: DrillContext, state: BackupJobState,
                        expected: tuple[str, ...]) -> RunbookStep:
    """What the store refused, from its own error text; a kind this runbook does not handle is
    a FAIL (the runbook would fix the wrong thing)."""
    return RunbookStep("classify-error", partial(_classify, ctx, state, expected),
                       "what the store refused")


def _rerun(ctx: DrillContext, state: BackupJobState) -> None:
    state.rerun_at = ctx.clock.utc()
    the_job, repo = job(ctx, state.job_target), backup_repo(ctx)
    try:
        the_job.run_once(timeout_s=ctx.inventory.step_timeout_s)
    except TargetUnreachable as exc:
        raise StepFailed(f"the backup still fails: {exc}") from exc
    runs = [r for r in the_job.runs_since(state.rerun_at) if r.ok and r.snapshot]
    if not runs:
        raise StepFailed("the backup job reported success but recorded no snapshot")
    snap_id = runs[-1].snapshot
    assert snap_id is not None
    found = [s for s in repo.snapshots() if s.id.startswith(snap_id)]
    if not found:
        raise StepFailed(f"snapshot {snap_id} is not in {repo.target.repository}")
    state.new_snapshot = found[-1]
    ctx.event("backup.run.succeeded", snapshot=state.new_snapshot.id,
              snapshot_utc=iso(state.new_snapshot.time))


def _verify_snapshot(ctx: DrillContext, state: BackupJobState) -> None:
    """The new snapshot holds every object of the asset exactly as the store has it now."""
    # the repository is readable again: now the restore point that covered the blind window
    # can be listed
    record_backup_restore_point(ctx, state)
    a = ctx.asset
    if state.new_snapshot is None:
        raise StepFailed("no new snapshot to verify")
    assert a.backup_path is not None
    store = ctx.adapters.s3(a.store)
    keys = store.list_keys(a.bucket, a.prefix)
    in_store = store.hash_objects(a.bucket, [(k, None) for k in keys])
    in_snap: dict[str, str] = {}
    with backup_repo(ctx).dump_tree(state.new_snapshot.id, a.backup_path) as files:
        for rel, stream in files:
            in_snap[a.prefix + rel] = sha256_stream(stream)[0]
    bad = [k for k in keys if in_snap.get(k) != in_store[k][0]]
    for k in keys[:200]:
        ctx.integrity(f"snapshot:{k}", str(in_store[k][0]), in_snap.get(k))
    if bad:
        raise StepFailed(f"{len(bad)} of {len(keys)} objects differ in the new snapshot")


def backup_proof_steps(ctx: DrillContext, state: BackupJobState) -> list[RunbookStep]:
    """Re-run the backup now, then prove the new snapshot holds the asset as stored."""
    return [
        RunbookStep("rerun-backup", partial(_rerun, ctx, state), "the backup job, now"),
        RunbookStep("verify-snapshot", partial(_verify_snapshot, ctx, state),
                    "the new snapshot holds the asset as stored"),
    ]


def record_backup_restore_point(ctx: DrillContext, state: BackupJobState) -> None:
    """The restore point that protected the asset while backups were blind."""
    a = ctx.asset
    assert a.backup_path is not None and state.last_good is not None
    repo = backup_repo(ctx)
    t0 = injected_at(ctx)
    before = [s for s in repo.snapshots(path=a.backup_path) if s.time <= t0]
    snap = before[-1] if before else state.last_good
    point = RestorePoint("restic-snapshot", snap.id, snap.time, repo.target.repository)
    ctx.findings.restore_point = point
    record_loss(ctx, point, [])


# -- verification ---------------------------------------------------------------------------------------


def next_scheduled_run_ok(ctx: DrillContext, state: BackupJobState) -> None:
    """The job's next *scheduled* run succeeds with what the runbook left configured."""
    if state.rerun_at is None:
        return  # the runbook stopped before the re-run: its failure is already recorded
    target = state.job_target
    after = ctx.clock.utc()
    deadline = ctx.clock.mono() + 2 * target.period_s + 60
    while ctx.clock.mono() < deadline:
        runs = [r for r in job(ctx, target).runs() if r.started >= after]
        if runs:
            run = runs[0]
            if not run.ok:
                ctx.fail(f"the next scheduled backup failed: {run.error[:200]}")
            _blind_evidence(ctx, state, run.ended if run.ok else None)
            return
        ctx.clock.sleep(0.5)
    ctx.inconclusive("the backup job did not run on schedule after recovery")


def _blind_evidence(ctx: DrillContext, state: BackupJobState,
                    scheduled_ok: datetime | None) -> None:
    t0 = injected_at(ctx)
    target, last_good = state.job_target, state.last_good
    assert last_good is not None
    runs = job(ctx, target).runs_since(t0)
    failed = [r for r in runs if not r.ok]
    first_ok = next((r for r in runs if r.ok), None)
    blind_until = first_ok.ended if first_ok is not None else None
    ctx.findings.sections["backup"] = {
        "job": target.name, "period_s": target.period_s,
        "last_good_before_fault": {"snapshot": last_good.id, "utc": iso(last_good.time)},
        "failed_runs": len(failed),
        "errors": sorted({r.error[:160] for r in failed}),
        "blind_s": None if blind_until is None else round((blind_until - t0).total_seconds(), 3),
        "rpo_exposure_at_fault_s": round((t0 - last_good.time).total_seconds(), 3),
        "rpo_exposure_max_s": None if blind_until is None else
        round((blind_until - last_good.time).total_seconds(), 3),
        "new_snapshot": None if state.new_snapshot is None else state.new_snapshot.id,
        "next_scheduled_run_ok_utc": None if scheduled_ok is None else iso(scheduled_ok),
    }
    loss = ctx.findings.sections.get("loss")
    if loss is not None:
        loss["restore_points_missed"] = len(failed)
