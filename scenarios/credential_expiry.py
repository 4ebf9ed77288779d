"""Scenario ``credential-expiry``: the backup service account's credentials stop working.

Variants (made with radosgw-admin through the inventory's ``rgw-admin`` target):
  revoked    the S3 key the backup job uses is removed (``key rm``): the store answers
             InvalidAccessKeyId;
  suspended  the account is suspended (``user suspend``): the store answers UserSuspended.

Detection is the job's own next scheduled run failing with that error. The runbook reads the
error the store returned, inspects the account, re-enables it if it was suspended, creates a new
key, writes it where the backup job reads its credentials, retires the old key, re-runs the
backup and proves the new snapshot holds the asset exactly as the store has it. Verification
waits for the next scheduled run to succeed and proves the old key is refused. Evidence: the
time backups were blind, the runs that failed, and the RPO exposure growth.

Revert puts the account back as found: enabled or not, exactly the original key pair (recreated
with ``key create --access-key --secret-key``), no other key, and the original credentials file.
The backup-job steps are harness/runbook/jobs.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from harness.blast import Touch, TouchKind
from harness.errors import Inconclusive, StepFailed, TargetUnreachable
from harness.inventory.model import JobTarget
from harness.runbook import jobs
from harness.runbook.drills import BackupJobDrill
from harness.scenario import RunbookStep
from harness.targets.restic import read_credentials_file, write_credentials_file
from harness.targets.rgwadmin import UserInfo


@dataclass
class CredentialState(jobs.BackupJobState):
    uid: str = ""
    found_user: UserInfo | None = None
    found_creds: bytes = b""
    found_key: tuple[str, str] = ("", "")
    new_key: tuple[str, str] | None = None
    inspected: UserInfo | None = None


class CredentialExpiry(BackupJobDrill[CredentialState]):
    name: ClassVar[str] = "credential-expiry"
    summary: ClassVar[str] = "revoke or suspend the backup account; rotate the key, prove backups"
    variants: ClassVar[tuple[str, ...]] = ("revoked", "suspended")
    blast_radius: ClassVar[str] = ("the backup service account's keys and suspension state; the "
                                   "backup job's credentials file")
    expected_error: ClassVar[tuple[str, ...]] = ("key-revoked", "user-suspended", "wrong-secret",
                                                 "access-denied")

    def new_state(self) -> CredentialState:
        return CredentialState()

    @property
    def credentials_file(self) -> Path:
        path = self.state.job_target.credentials_file
        assert path is not None  # preflight requires it
        return path

    @property
    def found_user(self) -> UserInfo:
        assert self.state.found_user is not None  # read in preflight
        return self.state.found_user

    def fault_touch(self, job: JobTarget) -> Touch | None:
        if job.service_account is None:
            return None
        return Touch(job.admin or "", TouchKind.ACCOUNT, job.service_account)

    def check_job(self, job: JobTarget) -> None:
        s = self.state
        if job.service_account is None or job.credentials_file is None:
            raise Inconclusive(f"job {job.name} names no service_account or credentials_file")
        s.uid = job.service_account
        creds = read_credentials_file(job.credentials_file)
        s.found_key = (creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"])
        s.found_user = self.admin.user_info(s.uid)
        if s.found_user.suspended:
            raise Inconclusive(f"account {s.uid} is already suspended")
        if s.found_key[0] not in s.found_user.access_keys:
            raise Inconclusive(f"the job's configured key is not a key of {s.uid}")

    def baseline(self) -> None:
        s = self.state
        s.found_creds = self.credentials_file.read_bytes()
        assert s.last_good is not None
        self.ctx.event("baseline.account", uid=s.uid, keys=len(self.found_user.access_keys),
                       last_good_snapshot=s.last_good.id)

    def inject(self) -> None:
        s = self.state
        if self.ctx.variant == "revoked":
            self.admin.remove_key(s.uid, s.found_key[0])
        else:
            self.admin.suspend(s.uid)
        self.ctx.event("fault.credentials", uid=s.uid, variant=self.ctx.variant)

    def remedy(self) -> list[RunbookStep]:
        return [
            RunbookStep("inspect-account", self.inspect, "radosgw-admin user info"),
            RunbookStep("rotate-key", self.rotate, "re-enable if suspended; a new key"),
            RunbookStep("update-credentials", self.update_credentials,
                        "write the new key where the backup job reads it"),
            RunbookStep("retire-old-key", self.retire_old_key, "the old key stops working"),
        ]

    def inspect(self) -> None:
        s = self.state
        s.inspected = self.admin.user_info(s.uid)
        self.ctx.event("account.inspected", suspended=s.inspected.suspended,
                       configured_key_present=s.found_key[0] in s.inspected.access_keys)

    def rotate(self) -> None:
        s = self.state
        assert s.inspected is not None
        if s.inspected.suspended:
            self.admin.enable(s.uid)
            self.ctx.event("account.enabled", uid=s.uid)
        s.new_key = self.admin.create_key(s.uid)
        self.ctx.event("key.created", uid=s.uid)

    def update_credentials(self) -> None:
        assert self.state.new_key is not None
        write_credentials_file(self.credentials_file, *self.state.new_key)
        self.ctx.event("credentials.updated", file=str(self.credentials_file))

    def retire_old_key(self) -> None:
        s = self.state
        assert s.new_key is not None
        keys = self.admin.user_info(s.uid).access_keys
        for key in keys:
            if key != s.new_key[0]:
                self.admin.remove_key(s.uid, key)
        self.ctx.event("key.retired", removed=len(keys) - 1)

    def verify(self) -> None:
        s = self.state
        jobs.next_scheduled_run_ok(self.ctx, s)
        store = self.ctx.adapters.s3(self.ctx.asset.store)
        creds = read_credentials_file(self.credentials_file)
        configured = (creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"])
        results = {}
        for label, pair in (("configured", configured), ("old", s.found_key)):
            try:
                store.as_account(f"{label}-key", *pair).ping()
                results[label] = "accepted"
            except TargetUnreachable as exc:
                results[label] = str(exc).rsplit(": ", 1)[-1]
        self.ctx.findings.sections["credentials"] = {
            "uid": s.uid, "variant": self.ctx.variant, "rotated": configured != s.found_key,
            "configured_key": results["configured"], "old_key": results["old"]}
        if results["configured"] != "accepted":
            self.ctx.fail(f"the configured key is refused: {results['configured']}")
        if results["old"] == "accepted":
            self.ctx.fail("the old key still works: the rotation is not complete")

    def revert(self) -> None:
        s, found = self.state, self.found_user
        info = self.admin.user_info(s.uid)
        if info.suspended and not found.suspended:
            self.admin.enable(s.uid)
        if s.found_key[0] not in info.access_keys:
            self.admin.create_key(s.uid, *s.found_key)
        for key in self.admin.user_info(s.uid).access_keys:
            if key not in found.access_keys:
                self.admin.remove_key(s.uid, key)
        path = self.credentials_file
        if path.read_bytes() != s.found_creds:
            tmp = path.with_suffix(".revert")
            tmp.write_bytes(s.found_creds)
            tmp.chmod(0o600)
            tmp.replace(path)
        after = self.admin.user_info(s.uid)
        if after.suspended != found.suspended or \
                set(after.access_keys) != set(found.access_keys):
            raise StepFailed(f"account {s.uid} is not as found after revert")
        try:
            jobs.job(self.ctx, s.job_target).run_once(timeout_s=self.ctx.inventory.step_timeout_s)
        except TargetUnreachable as exc:
            raise StepFailed(f"the backup job fails after revert: {exc}") from exc
