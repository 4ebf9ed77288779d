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
"""

from __future__ import annotations

from typing import ClassVar

from harness.blast import Touch, TouchKind
from harness.errors import Inconclusive, StepFailed, TargetUnreachable
from harness.inventory import JobTarget, S3Target, Secret
from harness.scenario import RunbookStep
from harness.targets.restic import read_credentials_file, write_credentials_file
from harness.targets.rgwadmin import UserInfo
from harness.targets.s3 import S3Store
from scenarios.datadrills import BackupJobDrill


class CredentialExpiry(BackupJobDrill):
    name: ClassVar[str] = "credential-expiry"
    summary: ClassVar[str] = "revoke or suspend the backup account; rotate the key, prove backups"
    variants: ClassVar[tuple[str, ...]] = ("revoked", "suspended")
    blast_radius: ClassVar[str] = ("the backup service account's keys and suspension state; the "
                                   "backup job's credentials file")
    expected_error: ClassVar[tuple[str, ...]] = ("key-revoked", "user-suspended", "wrong-secret",
                                                 "access-denied")

    uid: str
    found_user: UserInfo
    found_creds: bytes
    found_key: tuple[str, str]
    new_key: tuple[str, str] | None = None
    inspected: UserInfo | None = None

    def admin_touches(self, job: JobTarget) -> list[Touch]:
        if job.admin is None or job.service_account is None:
            return []
        return [Touch(job.admin, TouchKind.ACCOUNT, job.service_account)]

    def preflight(self) -> None:
        super().preflight()
        jt = self.job_target
        if jt.service_account is None or jt.credentials_file is None:
            raise Inconclusive(f"job {jt.name} names no service_account or credentials_file")
        self.uid = jt.service_account
        creds = read_credentials_file(jt.credentials_file)
        self.found_key = (creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"])
        self.found_user = self.admin.user_info(self.uid)
        if self.found_user.suspended:
            raise Inconclusive(f"account {self.uid} is already suspended")
        if self.found_key[0] not in self.found_user.access_keys:
            raise Inconclusive(f"the job's configured key is not a key of {self.uid}")

    def baseline(self) -> None:
        assert self.job_target.credentials_file is not None
        self.found_creds = self.job_target.credentials_file.read_bytes()
        self.ctx.event("baseline.account", uid=self.uid, keys=len(self.found_user.access_keys),
                       last_good_snapshot=self.last_good.id)

    def inject(self) -> None:
        if self.ctx.variant == "revoked":
            self.admin.remove_key(self.uid, self.found_key[0])
        else:
            self.admin.suspend(self.uid)
        self.ctx.event("fault.credentials", uid=self.uid, variant=self.ctx.variant)

    def runbook(self) -> list[RunbookStep]:
        return [
            RunbookStep("classify-error", self.classify, "what the store refused"),
            RunbookStep("inspect-account", self.inspect, "radosgw-admin user info"),
            RunbookStep("rotate-key", self.rotate, "re-enable if suspended; a new key"),
            RunbookStep("update-credentials", self.update_credentials,
                        "write the new key where the backup job reads it"),
            RunbookStep("retire-old-key", self.retire_old_key, "the old key stops working"),
            RunbookStep("rerun-backup", self.rerun_backup, "the backup job, now"),
            RunbookStep("verify-snapshot", self.verify_snapshot,
                        "the new snapshot holds the asset as stored"),
        ]

    def inspect(self) -> None:
        self.inspected = self.admin.user_info(self.uid)
        self.ctx.event("account.inspected", suspended=self.inspected.suspended,
                       configured_key_present=self.found_key[0] in self.inspected.access_keys)

    def rotate(self) -> None:
        assert self.inspected is not None
        if self.inspected.suspended:
            self.admin.enable(self.uid)
            self.ctx.event("account.enabled", uid=self.uid)
        self.new_key = self.admin.create_key(self.uid)
        self.ctx.event("key.created", uid=self.uid)

    def update_credentials(self) -> None:
        assert self.new_key is not None and self.job_target.credentials_file is not None
        write_credentials_file(self.job_target.credentials_file, *self.new_key)
        self.ctx.event("credentials.updated", file=str(self.job_target.credentials_file))

    def retire_old_key(self) -> None:
        assert self.new_key is not None
        keys = self.admin.user_info(self.uid).access_keys
        for key in keys:
            if key != self.new_key[0]:
                self.admin.remove_key(self.uid, key)
        self.ctx.event("key.retired", removed=len(keys) - 1)

    def verify(self) -> None:
        super().verify()
        endpoint = self.ctx.inventory.s3(self.ctx.asset.store).endpoint
        assert self.job_target.credentials_file is not None
        creds = read_credentials_file(self.job_target.credentials_file)
        configured = (creds["AWS_ACCESS_KEY_ID"], creds["AWS_SECRET_ACCESS_KEY"])
        results = {}
        for label, pair in (("configured", configured), ("old", self.found_key)):
            try:
                S3Store(S3Target(f"{label}-key", endpoint, "default", Secret(pair[0]),
                                 Secret(pair[1]), False)).ping()
                results[label] = "accepted"
            except TargetUnreachable as exc:
                results[label] = str(exc).rsplit(": ", 1)[-1]
        self.ctx.findings.sections["credentials"] = {
            "uid": self.uid, "variant": self.ctx.variant, "rotated": configured != self.found_key,
            "configured_key": results["configured"], "old_key": results["old"]}
        if results["configured"] != "accepted":
            self.ctx.fail(f"the configured key is refused: {results['configured']}")
        if results["old"] == "accepted":
            self.ctx.fail("the old key still works: the rotation is not complete")

    def revert(self) -> None:
        info = self.admin.user_info(self.uid)
        if info.suspended and not self.found_user.suspended:
            self.admin.enable(self.uid)
        if self.found_key[0] not in info.access_keys:
            self.admin.create_key(self.uid, *self.found_key)
        for key in self.admin.user_info(self.uid).access_keys:
            if key not in self.found_user.access_keys:
                self.admin.remove_key(self.uid, key)
        assert self.job_target.credentials_file is not None
        path = self.job_target.credentials_file
        if path.read_bytes() != self.found_creds:
            tmp = path.with_suffix(".revert")
            tmp.write_bytes(self.found_creds)
            tmp.chmod(0o600)
            tmp.replace(path)
        after = self.admin.user_info(self.uid)
        if after.suspended != self.found_user.suspended or \
                set(after.access_keys) != set(self.found_user.access_keys):
            raise StepFailed(f"account {self.uid} is not as found after revert")
        try:
            self.job.run_once(timeout_s=self.ctx.inventory.step_timeout_s)
        except TargetUnreachable as exc:
            raise StepFailed(f"the backup job fails after revert: {exc}") from exc
