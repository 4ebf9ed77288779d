"""Scenario ``storage-full``: the backup target fills up and backups fail.

The fault is a quota on the bucket the backup job writes (``radosgw-admin quota set`` through the
inventory's ``rgw-admin`` target), set to exactly what the bucket already holds: the next backup
is refused with QuotaExceeded. Variants, i.e. the remedy the site has configured:
  raise-quota  the capacity is raised (by half the current usage, at least 16 MiB), then the
               backup is re-run;
  retention    the retention policy is applied: ``restic forget --keep-last N --prune`` (N is the
               job's ``keep_last``). A full repository cannot take the lock prune needs, so the
               limit is lifted for the prune and set back after; and because the backup bucket is
               versioned, what prune deletes only becomes a noncurrent version that still counts
               against the quota, so those versions are purged too. The backup must then land
               under the same limit that refused it.

Verification: the re-run's snapshot holds the asset as the store has it, and the next scheduled
run succeeds. Evidence ``sections["capacity"]``: quota and usage before, at the fault and after.
Revert sets the bucket's quota back as found.
"""

from __future__ import annotations

from typing import Any, ClassVar

from harness.blast import Touch, TouchKind
from harness.errors import Inconclusive, StepFailed
from harness.inventory import JobTarget, S3Target, Secret
from harness.scenario import RunbookStep
from harness.targets.restic import read_credentials_file
from harness.targets.rgwadmin import Quota
from harness.targets.s3 import S3Store
from scenarios.datadrills import BackupJobDrill

MiB = 1024 * 1024


class StorageFull(BackupJobDrill):
    name: ClassVar[str] = "storage-full"
    summary: ClassVar[str] = "fill the backup target (quota); apply retention or raise capacity"
    variants: ClassVar[tuple[str, ...]] = ("raise-quota", "retention")
    blast_radius: ClassVar[str] = "the quota of the bucket the backup job writes"
    expected_error: ClassVar[tuple[str, ...]] = ("quota-exceeded",)

    bucket: str
    found_quota: Quota
    fault_quota: Quota
    capacity: dict[str, Any]

    def admin_touches(self, job: JobTarget) -> list[Touch]:
        if job.admin is None or job.bucket is None:
            return []
        return [Touch(job.admin, TouchKind.QUOTA, job.bucket)]

    def preflight(self) -> None:
        super().preflight()
        if self.job_target.bucket is None:
            raise Inconclusive(f"job {self.job_target.name} names no bucket it writes")
        if self.ctx.variant == "retention" and self.job_target.keep_last is None:
            raise Inconclusive(f"job {self.job_target.name} has no retention policy (keep_last)")
        self.bucket = self.job_target.bucket
        self.found_quota = self.admin.bucket_quota(self.bucket)

    def baseline(self) -> None:
        size, objects = self.admin.bucket_usage(self.bucket)
        self.capacity = {"bucket": self.bucket, "found_quota": self.found_quota.__dict__,
                         "usage_at_baseline": {"bytes": size, "objects": objects}}
        self.ctx.event("baseline.capacity", bytes=size, objects=objects)

    def inject(self) -> None:
        size, _ = self.admin.bucket_usage(self.bucket)
        self.fault_quota = Quota(True, size, -1)
        self.admin.set_bucket_quota(self.bucket, self.fault_quota)
        self.capacity["fault_quota"] = self.fault_quota.__dict__
        self.ctx.event("fault.quota", bucket=self.bucket, max_size=size)

    def runbook(self) -> list[RunbookStep]:
        remedy = (RunbookStep("raise-quota", self.raise_quota, "more capacity")
                  if self.ctx.variant == "raise-quota" else
                  RunbookStep("apply-retention", self.apply_retention,
                              "forget --prune, purge what it deleted"))
        return [
            RunbookStep("classify-error", self.classify, "what the store refused"),
            RunbookStep("inspect-capacity", self.inspect, "quota and usage"),
            remedy,
            RunbookStep("rerun-backup", self.rerun_backup, "the backup job, now"),
            RunbookStep("verify-snapshot", self.verify_snapshot,
                        "the new snapshot holds the asset as stored"),
        ]

    def inspect(self) -> None:
        quota = self.admin.bucket_quota(self.bucket)
        size, objects = self.admin.bucket_usage(self.bucket)
        self.capacity["at_detection"] = {"quota": quota.__dict__, "bytes": size,
                                         "objects": objects}
        full = quota.enabled and quota.max_size >= 0 and size >= quota.max_size
        self.ctx.event("capacity.inspected", bytes=size, max_size=quota.max_size, full=full)
        if not full:
            raise StepFailed(f"bucket {self.bucket} is not full ({size} of {quota.max_size} B): "
                             "the quota error has another cause")

    def raise_quota(self) -> None:
        size, _ = self.admin.bucket_usage(self.bucket)
        raised = Quota(True, size + max(size // 2, 16 * MiB), -1)
        self.admin.set_bucket_quota(self.bucket, raised)
        self.capacity["raised_quota"] = raised.__dict__

    def _repo_location(self) -> tuple[str, str]:
        repo = self.repo.target.repository
        if not repo.startswith("s3:"):
            raise Inconclusive(f"retention purge needs an s3 repository, not {repo}")
        path = repo.split("://", 1)[-1].split("/", 1)[-1]
        bucket, _, prefix = path.partition("/")
        return bucket, (prefix.rstrip("/") + "/") if prefix else ""

    def apply_retention(self) -> None:
        keep = self.job_target.keep_last
        assert keep is not None
        before = len(self.repo.snapshots())
        # prune needs an exclusive lock: pause the scheduled job, as an operator would
        self.job.stop()
        self.admin.set_bucket_quota(self.bucket, self.found_quota)  # prune needs room to lock
        try:
            # a backup killed by the full store may have left its lock behind; unlock removes
            # only locks whose process is gone
            self.repo.run("unlock")
            self.repo.run("forget", "--keep-last", str(keep), "--prune")
            freed = self._purge_deleted()
        finally:
            self.admin.set_bucket_quota(self.bucket, self.fault_quota)
            self.job.start()
        size, objects = self.admin.bucket_usage(self.bucket)
        self.capacity["retention"] = {"keep_last": keep, "snapshots_before": before,
                                      "snapshots_after": len(self.repo.snapshots()),
                                      "noncurrent_bytes_purged": freed,
                                      "usage_after": {"bytes": size, "objects": objects}}
        if size >= self.fault_quota.max_size:
            raise StepFailed(f"retention freed too little: {size} B used of "
                             f"{self.fault_quota.max_size} B")

    def _purge_deleted(self) -> int:
        """Delete every version of the repository objects prune removed (their newest version
        is a delete marker); returns the bytes freed."""
        bucket, prefix = self._repo_location()
        assert self.job_target.credentials_file is not None
        creds = read_credentials_file(self.job_target.credentials_file)
        endpoint = self.ctx.inventory.s3(self.ctx.asset.store).endpoint
        store = S3Store(S3Target("backup-account", endpoint, "default",
                                 Secret(creds["AWS_ACCESS_KEY_ID"]),
                                 Secret(creds["AWS_SECRET_ACCESS_KEY"]), False))
        versions = store.list_versions(bucket, prefix)
        deleted = {v.key for v in versions if v.is_latest and v.is_delete_marker}
        freed = 0
        for v in versions:
            if v.key in deleted:
                freed += v.size
                store.delete(bucket, v.key, v.version_id)
        return freed

    def verify(self) -> None:
        super().verify()
        size, objects = self.admin.bucket_usage(self.bucket)
        quota = self.admin.bucket_quota(self.bucket)
        self.capacity["after_recovery"] = {"quota": quota.__dict__, "bytes": size,
                                           "objects": objects}
        self.ctx.findings.sections["capacity"] = self.capacity
        if quota.enabled and quota.max_size >= 0 and size > quota.max_size:
            self.ctx.fail(f"usage {size} B is over the quota {quota.max_size} B after recovery")

    def revert(self) -> None:
        self.admin.set_bucket_quota(self.bucket, self.found_quota)
        self.job.start()  # idempotent: running if it was paused for a prune
        if self.admin.bucket_quota(self.bucket) != self.found_quota:
            raise StepFailed(f"the quota of {self.bucket} is not as found after revert")
