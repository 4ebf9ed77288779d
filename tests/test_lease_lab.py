"""The lease stores against the lab's real systems: the same contract as the in-memory fake
(tests/test_lease.py), conditional creates racing on Ceph RGW and PostgreSQL, and the advisory
lock that tells a live PostgreSQL holder from a dead one."""

from __future__ import annotations

import secrets

import pytest
from test_lease import check_create_race, check_store_contract

from harness.lease_stores import PostgresLeaseStore, S3LeaseStore
from harness.targets.s3 import S3Store
from lab.postgres import PostgresServer
from lab.stack import SAFETY_BUCKET, Lab

pytestmark = pytest.mark.lab


def s3_store(lab: Lab) -> S3LeaseStore:
    return S3LeaseStore(S3Store(lab.operator_target()), SAFETY_BUCKET)


def pg_store(lab: Lab) -> PostgresLeaseStore:
    return PostgresLeaseStore(PostgresServer(lab.root).db())


def test_s3_lease_store_contract_and_race(lab: Lab) -> None:
    key = f"artifact-store/s3-prefix/contract-{secrets.token_hex(3)}/"
    check_store_contract(s3_store(lab), key)
    check_create_race(lambda: s3_store(lab), key + "race")


def test_postgres_lease_store_contract_and_race(lab: Lab) -> None:
    key = f"postgres/database/contract-{secrets.token_hex(3)}"
    check_store_contract(pg_store(lab), key)
    check_create_race(lambda: pg_store(lab), key + "-race")


def test_postgres_advisory_lock_tells_a_live_holder(lab: Lab) -> None:
    key = f"postgres/database/alive-{secrets.token_hex(3)}"
    holder, other = pg_store(lab), pg_store(lab)
    assert other.holder_alive(key) is False
    assert holder.hold(key)
    try:
        assert other.holder_alive(key) is True
        assert not other.hold(key), "a second live holder must be refused"
    finally:
        holder.unhold(key)  # what the end of the holder's process does to its session
    assert other.holder_alive(key) is False
