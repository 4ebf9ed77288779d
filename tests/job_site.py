"""A lab-shaped site for the backup- and replication-job scenario tests, all in memory: the
artifact store with a dataset, the backup job writing restic snapshots into the secondary bucket
as the backup account (refused when its key is gone, its account suspended or the bucket over
quota), the replication job copying the asset to the replica store, and radosgw-admin."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenario_kit import START, unit_inventory

from harness.fakes.job import FakeJob, JobFailed
from harness.fakes.restic import FakeRepo
from harness.fakes.rgwadmin import FakeRgwAdmin
from harness.fakes.store import FakeStore
from harness.inventory import Inventory
from harness.journal import ManualClock
from harness.targets.restic import read_credentials_file, write_credentials_file

ASSET = "lab-dataset"
UID, KEY, SECRET = "drillbook-backup", "AKBACKUP0", "backup-secret-0"


@dataclass
class JobSite:
    inventory: Inventory
    clock: ManualClock
    store: FakeStore
    replica: FakeStore
    admin: FakeRgwAdmin
    restic: FakeRepo
    backup_job: FakeJob
    replication_job: FakeJob
    root: Path

    @property
    def adapters(self) -> dict[str, object]:
        return {"artifact-store": self.store, "replica-store": self.replica,
                "rgw-admin": self.admin, "scheduled-backups": self.restic,
                "backup-job": self.backup_job, "replication-job": self.replication_job}

    @property
    def credentials(self) -> Path:
        path = self.inventory.job("backup-job").credentials_file
        assert path is not None
        return path

    def account(self) -> tuple[bool, frozenset[str], bytes]:
        info = self.admin.user_info(UID)
        return info.suspended, frozenset(info.access_keys), self.credentials.read_bytes()

    def canaries(self) -> list[str]:
        a = self.inventory.assets[ASSET]
        return [k for k in self.store.list_keys(a.bucket, a.prefix) if ".drill-canary/" in k] + \
            self.replica.list_keys("drillbook-replica", f"{a.bucket}/{a.prefix}.drill-canary/")


def job_site(root: Path) -> JobSite:
    clock = ManualClock(START)
    # short periods: the drill's waits are bounded by them, and each probe is a real call
    inv = unit_inventory(root, {"backup-job": {"period_s": 5.0},
                                "replication-job": {"period_s": 3.0}})
    a = inv.assets[ASSET]
    assert a.backup is not None and a.backup_path is not None
    # the store asks radosgw-admin's accounts whether a key is good, as RGW does
    operator = inv.s3("artifact-store")
    store = FakeStore(operator, now=clock.utc,
                      accounts=lambda ak, sk: admin.authenticate(ak, sk))
    bjob = inv.job("backup-job")
    rjob = inv.job("replication-job")
    assert bjob.credentials_file is not None and bjob.bucket is not None
    assert rjob.replica_bucket is not None
    for b in (a.bucket, bjob.bucket, inv.safety_bucket):
        store.create_bucket(b)
    admin = FakeRgwAdmin(store.bucket_usage)
    admin.add_user("operator", operator.access_key.value, operator.secret_key.value)
    admin.add_user(UID, KEY, SECRET)
    for i in range(3):
        store.put_bytes(a.bucket, f"{a.prefix}part-{i}.parquet", f"rows {i}".encode() * 50)
    replica = FakeStore(inv.s3("replica-store"), now=clock.utc)
    replica.create_bucket(rjob.replica_bucket)
    write_credentials_file(bjob.credentials_file, KEY, SECRET)
    restic = FakeRepo(inv.restic(a.backup), now=clock.utc, store=store.view("restic"))
    backup_path, bucket, creds = a.backup_path, bjob.bucket, bjob.credentials_file

    def backup() -> dict[str, Any]:
        c = read_credentials_file(creds)
        writer = store.as_account("backup-account", c["AWS_ACCESS_KEY_ID"],
                                  c["AWS_SECRET_ACCESS_KEY"])
        files = {k[len(a.prefix):]: store.read_bytes(a.bucket, k) or b""
                 for k in store.list_keys(a.bucket, a.prefix)}
        if admin.refuses(bucket, sum(len(v) for v in files.values())):
            raise JobFailed(f"Fatal: unable to save snapshot: QuotaExceeded (bucket {bucket})")
        return {"snapshot": restic.backup_files(backup_path, files, writer=writer).id}

    copier = replica.view("replication")

    def replicate() -> dict[str, Any]:
        keys = set(store.list_keys(a.bucket, a.prefix))
        for k in keys:
            data = store.read_bytes(a.bucket, k) or b""
            if replica.read_bytes(rjob.replica_bucket, f"{a.bucket}/{k}") != data:
                copier.put_bytes(rjob.replica_bucket, f"{a.bucket}/{k}", data)
        for k in replica.list_keys(rjob.replica_bucket, f"{a.bucket}/{a.prefix}"):
            if k[len(a.bucket) + 1:] not in keys:
                copier.delete(rjob.replica_bucket, k)
        return {}

    site = JobSite(inv, clock, store, replica, admin, restic,
                   FakeJob("backup-job", clock, bjob.period_s, backup),
                   FakeJob("replication-job", clock, rjob.period_s, replicate), root)
    for _ in range(5):  # the history a site has: five backups, replication in sync
        site.backup_job.run_once()
        clock.advance(bjob.period_s)
    return site
