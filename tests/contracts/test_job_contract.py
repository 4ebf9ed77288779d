"""The periodic-job and radosgw-admin contracts: the same assertions against FakeJob and
FakeRgwAdmin (lab-free) and the lab's backup job and radosgw-admin (marked ``lab``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.errors import Inconclusive
from harness.fakes.job import FakeJob
from harness.fakes.rgwadmin import FakeRgwAdmin
from harness.journal import Clock
from harness.targets.protocols import JobAPI, RgwAdminAPI
from harness.targets.rgwadmin import Quota

UID = "drillbook-backup"


def _work() -> dict[str, Any]:
    return {"snapshot": "0123abcd"}


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.lab)])
def job(request: pytest.FixtureRequest) -> JobAPI:
    if request.param == "fake":
        fake = FakeJob("backup-job", Clock(), 3600.0, _work, duration_s=0.0)
        fake.run_once()
        return fake
    from harness.inventory import load_inventory
    from harness.targets.job import Job
    lab = request.getfixturevalue("lab")
    return Job(load_inventory(lab.inventory_path).job("backup-job"))


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.lab)])
def admin(request: pytest.FixtureRequest) -> Iterator[tuple[RgwAdminAPI, str]]:
    if request.param == "fake":
        fake = FakeRgwAdmin(lambda bucket: (1234, 5))
        fake.add_user(UID, "AK", "SK")
        yield fake, "drillbook-secondary"
        return
    from harness.inventory import load_inventory
    from harness.targets.rgwadmin import RgwAdmin
    lab = request.getfixturevalue("lab")
    inv = load_inventory(lab.inventory_path)
    bucket = inv.job("backup-job").bucket
    assert bucket is not None
    yield RgwAdmin(inv.rgw_admin("rgw-admin")), bucket


def test_runs_are_recorded_in_order(job: JobAPI) -> None:
    runs = job.runs()
    assert runs and [r.started for r in runs] == sorted(r.started for r in runs)
    last = job.last_success()
    assert last is not None and last.ok and last == [r for r in runs if r.ok][-1]
    assert job.runs_since(last.started)[0] == last
    assert all(r.ended >= r.started for r in runs)


def test_run_once_records_a_successful_run_with_its_snapshot(job: JobAPI) -> None:
    before = job.last_success()
    assert before is not None
    job.run_once(timeout_s=300)
    after = job.last_success()
    assert after is not None and after.started >= before.started and after.snapshot


def test_account_keys_round_trip(admin: tuple[RgwAdminAPI, str]) -> None:
    rgw = admin[0]
    found = rgw.user_info(UID)
    assert found.uid == UID and not found.suspended and found.access_keys
    assert all(found.secret_for(k) for k in found.access_keys)
    new_key = rgw.create_key(UID)
    try:
        assert new_key[0] in rgw.user_info(UID).access_keys
        assert rgw.user_info(UID).secret_for(new_key[0]) == new_key[1]
    finally:
        rgw.remove_key(UID, new_key[0])
    assert set(rgw.user_info(UID).access_keys) == set(found.access_keys)


def test_suspend_and_enable(admin: tuple[RgwAdminAPI, str]) -> None:
    rgw = admin[0]
    rgw.suspend(UID)
    try:
        assert rgw.user_info(UID).suspended
    finally:
        rgw.enable(UID)
    assert not rgw.user_info(UID).suspended


def test_bucket_quota_round_trip(admin: tuple[RgwAdminAPI, str]) -> None:
    rgw, bucket = admin
    found = rgw.bucket_quota(bucket)
    size, objects = rgw.bucket_usage(bucket)
    assert size >= 0 and objects >= 0
    try:
        rgw.set_bucket_quota(bucket, Quota(True, size + 1024, -1))
        assert rgw.bucket_quota(bucket) == Quota(True, size + 1024, -1)
    finally:
        rgw.set_bucket_quota(bucket, found)
    assert rgw.bucket_quota(bucket) == found


def test_unknown_account_is_an_error(admin: tuple[RgwAdminAPI, str]) -> None:
    with pytest.raises(Inconclusive):
        admin[0].user_info("no-such-user-drillbook")
