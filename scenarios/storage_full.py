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
Revert sets the bucket's quota back as found. The backup-job steps are harness/runbook/jobs.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.blast import Touch, TouchKind
from harness.errors import Inconclusive, StepFailed
from harness.inventory.model import JobTarget
from harness.runbook import jobs
from harness.runbook.drills import BackupJobDrill
from harness.scenario import RunbookStep
from harness.targets.restic import read_credentials_file
from harness.targets.rgwadmin import Quota

MiB = 1024 * 1024


@dataclass
class CapacityState(jobs.BackupJobState):
    bucket: str = ""
    found_quota: Quota | None = None
    fault_quota: Quota | None = None
    #: the evidence section, filled phase by phase
    capacity: dict[str, Any] = field(default_factory=dict)


class StorageFull(BackupJobDrill[CapacityState]):
    name: ClassVar[str] = "storage-full"
    summary: ClassVar[str] = "fill the backup target (quota); apply retention or raise capacity"
    variants: ClassVar[tuple[str, ...]] = ("raise-quota", "retention")
    blast_radius: ClassVar[str] = "the quota of the bucket the backup job writes"
    expected_error: ClassVar[tuple[str, ...]] = ("quota-exceeded",)

    def new_state(self) -> CapacityState:
        return CapacityState()

    @property
    def found_quota(self) -> Quota:
        assert self.state.found_quota is not None  # read in preflight
        return self.state.found_quota

    @property
    def fault_quota(self) -> Quota:
        assert self.state.fault_quota is not None  # set by inject
        return self.state.fault_quota

    def fault_touch(self, job: JobTarget) -> Touch | None:
        return None if job.bucket is None else Touch(job.admin or "", TouchKind.QUOTA, job.bucket)

    def check_job(self, job: JobTarget) -> None:
        if job.bucket is None:
            raise Inconclusive(f"job {job.name} names no bucket it writes")
        if self.ctx.variant == "retention" and job.keep_last is None:
            raise Inconclusive(f"job {job.name} has no retention policy (keep_last)")
        self.state.bucket = job.bucket
        self.state.found_quota = self.admin.bucket_quota(job.bucket)

    def baseline(self) -> None:
        s = self.state
        size, objects = self.admin.bucket_usage(s.bucket)
        s.capacity = {"bucket": s.bucket, "found_quota": self.found_quota.__dict__,
                      "usage_at_baseline": {"bytes": size, "objects": objects}}
        self.ctx.event("baseline.capacity", bytes=size, objects=objects)

    def inject(self) -> None:
        s = self.state
        size, _ = self.admin.bucket_usage(s.bucket)
        s.fault_quota = Quota(True, size, -1)
        self.admin.set_bucket_quota(s.bucket, s.fault_quota)
        s.capacity["fault_quota"] = s.fault_quota.__dict__
        self.ctx.event("fault.quota", bucket=s.bucket, max_size=size)

    def remedy(self) -> list[RunbookStep]:
        fix = (RunbookStep("raise-quota", self.raise_quota, "more capacity")
               if self.ctx.variant == "raise-quota" else
               RunbookStep("apply-retention", self.apply_retention,
                           "forget --prune, purge what it deleted"))
        return [RunbookStep("inspect-capacity", self.inspect, "quota and usage"), fix]

    def inspect(self) -> None:
        s = self.state
        quota = self.admin.bucket_quota(s.bucket)
        size, objects = self.admin.bucket_usage(s.bucket)
        s.capacity["at_detection"] = {"quota": quota.__dict__, "bytes": size, "objects": objects}
        full = quota.enabled and quota.max_size >= 0 and size >= quota.max_size
        self.ctx.event("capacity.inspected", bytes=size, max_size=quota.max_size, full=full)
        if not full:
            raise StepFailed(f"bucket {s.bucket} is not full ({size} of {quota.max_size} B): "
                             "the quota error has another cause")

    def raise_quota(self) -> None:
        s = self.state
        size, _ = self.admin.bucket_usage(s.bucket)
        raised = Quota(True, size + max(size // 2, 16 * MiB), -1)
        self.admin.set_bucket_quota(s.bucket, raised)
        s.capacity["raised_quota"] = raised.__dict__

    def _repo_location(self) -> tuple[str, str]:
        repo = jobs.backup_repo(self.ctx).target.repository
        if not repo.startswith("s3:"):
            raise Inconclusive(f"retention purge needs an s3 repository, not {repo}")
        path = repo.split("://", 1)[-1].split("/", 1)[-1]
        bucket, _, prefix = path.partition("/")
        return bucket, (prefix.rstrip("/") + "/") if prefix else ""

    def apply_retention(self) -> None:
        s = self.state
        keep = s.job_target.keep_last
        assert keep is not None
        repo, job = jobs.backup_repo(self.ctx), jobs.job(self.ctx, s.job_target)
        before = len(repo.snapshots())
        # prune needs an exclusive lock: pause the scheduled job, as an operator would
        job.stop()
        self.admin.set_bucket_quota(s.bucket, self.found_quota)  # prune needs room to lock
        try:
            # a backup killed by the full store may have left its lock behind; unlock removes
            # only locks whose process is gone
            repo.run("unlock")
            repo.run("forget", "--keep-last", str(keep), "--prune")
            freed = self._purge_deleted()
        finally:
            self.admin.set_bucket_quota(s.bucket, self.fault_quota)
            job.start()
        size, objects = self.admin.bucket_usage(s.bucket)
        s.capacity["retention"] = {"keep_last": keep, "snapshots_before": before,
                                   "snapshots_after": len(repo.snapshots()),
                                   "noncurrent_bytes_purged": freed,
                                   "usage_after": {"bytes": size, "objects": objects}}
        if size >= self.fault_quota.max_size:
            raise StepFailed(f"retention freed too little: {size} B used of "
                             f"{self.fault_quota.max_size} B")

    def _purge_deleted(self) -> int:
        """Delete every version of the repository objects prune removed (their newest version
        is a delete marker), as the backup account; returns the bytes freed."""
        bucket, prefix = self._repo_location()
        path = self.state.job_target.credentials_file
        assert path is not None
        creds = read_credentials_file(path)
        store = self.ctx.adapters.s3(self.ctx.asset.store).as_account(
            "backup-account", creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"])
        versions = store.list_versions(bucket, prefix)
        deleted = {v.key for v in versions if v.is_latest and v.is_delete_marker}
        freed = 0
        for v in versions:
            if v.key in deleted:
                freed += v.size
                store.delete(bucket, v.key, v.version_id)
        return freed

    def verify(self) -> None:
        s = self.state
        jobs.next_scheduled_run_ok(self.ctx, s)
        size, objects = self.admin.bucket_usage(s.bucket)
        quota = self.admin.bucket_quota(s.bucket)
        s.capacity["after_recovery"] = {"quota": quota.__dict__, "bytes": size,
                                        "objects": objects}
        self.ctx.findings.sections["capacity"] = s.capacity
        if quota.enabled and quota.max_size >= 0 and size > quota.max_size:
            self.ctx.fail(f"usage {size} B is over the quota {quota.max_size} B after recovery")

    def revert(self) -> None:
        s = self.state
        self.admin.set_bucket_quota(s.bucket, self.found_quota)
        jobs.job(self.ctx, s.job_target).start()  # idempotent: running if paused for a prune
        if self.admin.bucket_quota(s.bucket) != self.found_quota:
            raise StepFailed(f"the quota of {s.bucket} is not as found after revert")
