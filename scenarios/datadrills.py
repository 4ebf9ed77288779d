"""Shared pieces of the data drills: restore points, loss accounting, store errors.

- :class:`AssetRestoreDrill`: the artifact-deletion machinery (manifest, safety copy, bucket
  versions or restic, verification, revert) for any manifest-described prefix, with two things
  the data drills need on top: the restic restore point is the newest snapshot *made before the
  fault* (within the clock tolerance) whose files hash to the baseline (scheduled backups keep
  running during a drill and would otherwise offer a copy of the damage); newer snapshots that
  are corrupt or unreadable are passed over with a deviation each; and loss accounting.
- :func:`record_loss`, :func:`backup_job_for`, :func:`replication_job_for`, :func:`has_job`,
  :func:`classify_store_error`, :func:`injected_at`: plain helpers, kept in
  harness/runbook/jobs.py and harness/runbook/timeline.py and named here for the drills that
  import them from this module. The backup-job drills are built from harness/runbook/jobs.py.
"""

from __future__ import annotations

from typing import ClassVar

from harness.errors import Inconclusive, StepFailed, TargetUnreachable
from harness.model import iso
from harness.runbook.jobs import (
    STORE_ERRORS,
    backup_job_for,
    classify_store_error,
    has_job,
    record_loss,
    replication_job_for,
)
from harness.runbook.timeline import injected_at
from harness.targets.restic import Snapshot
from harness.targets.s3 import ObjectVersion
from scenarios.artifact_deletion import ArtifactDeletion

__all__ = ["STORE_ERRORS", "AssetRestoreDrill", "backup_job_for", "classify_store_error",
           "has_job", "injected_at", "record_loss", "replication_job_for"]


class AssetRestoreDrill(ArtifactDeletion):
    """Artifact deletion for any manifest-described asset, with verified restore points and loss
    accounting. Subclasses set name, summary, asset kinds; purge (restic) comes first."""

    variants: ClassVar[tuple[str, ...]] = ("purge", "soft")
    baseline_versions: list[ObjectVersion]

    def baseline(self) -> None:
        super().baseline()
        a = self.ctx.asset
        wanted = set(self.keys)
        # the state at baseline: each key's current version (history is not data in use)
        self.baseline_versions = [v for v in self.store.list_versions(a.bucket, a.prefix)
                                  if v.key in wanted and v.is_latest and not v.is_delete_marker]

    def _newest_snapshot(self) -> Snapshot:
        """The newest snapshot made before the fault whose files hash to the manifest. A newer one
        that does not (corrupt, incomplete, a copy of the damage) or cannot be read is passed
        over, and a deviation says which, why, and what RPO it would have given."""
        a = self.ctx.asset
        assert a.backup_path is not None
        snaps = self._snapshots_before_fault()
        if not snaps:
            raise Inconclusive(f"no restore point: no restic snapshot of {a.backup_path} made "
                               f"before the fault in {self.repo.target.repository}")
        at, what = self._fault_time()
        rejected: list[str] = []
        for snap in reversed(snaps[-5:]):
            try:
                # restic's content ids: a snapshot of content proven before costs no data read
                holds = self.snapshot_holds_baseline(snap)
            except TargetUnreachable as exc:
                why = f"unreadable ({exc})"
            else:
                if holds:
                    if rejected:
                        self.ctx.deviation(
                            f"fell back to restic snapshot {snap.short_id} ({iso(snap.time)}): "
                            f"{len(rejected)} newer snapshot(s) rejected")
                    return snap
                why = "corrupt: its files do not hash to the manifest"
            rejected.append(snap.id)
            self.ctx.event("restore-point.rejected", snapshot=snap.id, reason=why[:300])
            if snap.id not in self._noted:
                self._noted.add(snap.id)
                would = max((at - snap.time).total_seconds(), 0.0)
                self.ctx.deviation(f"newest backup {snap.short_id} of {a.backup_path} "
                                   f"({iso(snap.time)}) is {why}: not restored; RPO would have "
                                   f"been {would:.1f} s (to {what})")
        raise Inconclusive(f"no restore point: none of the newest {min(5, len(snaps))} "
                           f"snapshots of {a.backup_path} holds a copy matching the manifest")

    def locate(self) -> None:
        super().locate()
        point = self.ctx.findings.restore_point
        if point is None:
            raise StepFailed("no restore point was located")
        if point.continuous:
            # versioning kept every write: the plan knows exactly which ones did not come back
            newer = [(p.key, w) for p in self.plan.values() for w in p.lost_writes]
        else:
            newer = [(v.key, v.last_modified) for v in self.baseline_versions]
        record_loss(self.ctx, point, newer)
