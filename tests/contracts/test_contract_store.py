"""The store contract: the same assertions against the in-memory FakeStore (lab-free) and the real
S3Store on the lab's Ceph RGW (marked ``lab``), on a bucket made for the test and removed after.
What the object scenarios, the safety copy and the restore pipeline rely on: versions newest
first, delete markers, version ids, S3's ETags, missing keys, server-side copies, the fence, and
other accounts' clients (what the credential and capacity drills act as)."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from harness.blast import Fence, Touch
from harness.errors import GuardRefused, TargetUnreachable
from harness.fakes.store import FakeStore, s3_etag
from harness.inventory import S3Target
from harness.inventory.model import Secret
from harness.targets.protocols import ObjectStore
from harness.targets.s3 import PartBudget, S3Store, StoreError

MiB = 1024 * 1024


def _fake() -> tuple[ObjectStore, str]:
    target = S3Target("fake-store", "http://127.0.0.1:9", "default", Secret("a"), Secret("b"),
                      drill_safe=True)
    # the gateway knows one account, the store's own, as the lab's RGW knows the operator's
    accounts = {"a": "b"}

    def authenticate(access_key: str, secret_key: str) -> str | None:
        if access_key not in accounts:
            return "InvalidAccessKeyId"
        return None if accounts[access_key] == secret_key else "SignatureDoesNotMatch"
    return FakeStore(target, accounts=authenticate), f"contract-{secrets.token_hex(4)}"


def _real(lab: Any) -> tuple[ObjectStore, str]:
    return S3Store(lab.operator_target()), f"contract-{secrets.token_hex(4)}"


@pytest.fixture(params=["fake", pytest.param("lab", marks=pytest.mark.lab)])
def store(request: pytest.FixtureRequest) -> Iterator[tuple[ObjectStore, str]]:
    s, bucket = _fake() if request.param == "fake" else \
        _real(request.getfixturevalue("lab"))
    s.ensure_bucket(bucket, versioned=True)
    yield s, bucket
    s.fence = None
    for v in s.list_versions(bucket, ""):
        s.delete(bucket, v.key, v.version_id)
    if isinstance(s, S3Store):
        s._client.delete_bucket(Bucket=bucket)  # the adapter itself never removes a bucket


def test_put_read_hash_and_etag(store: tuple[ObjectStore, str]) -> None:
    s, b = store
    data = b"weights " * 100
    s.put_bytes(b, "m/a.bin", data)
    assert s.read_bytes(b, "m/a.bin") == data and s.exists(b, "m/a.bin")
    assert s.hash_object(b, "m/a.bin") == (hashlib.sha256(data).hexdigest(), len(data))
    (v,) = s.list_versions(b, "m/")
    assert v.etag == s3_etag(data) and v.size == len(data) and v.is_latest
    assert s.list_keys(b, "m/") == ["m/a.bin"] and s.list_keys(b, "other/") == []
    assert s.versioning_enabled(b)


def test_missing_objects(store: tuple[ObjectStore, str]) -> None:
    s, b = store
    assert s.read_bytes(b, "nope") is None and not s.exists(b, "nope")
    assert s.hash_objects(b, [("nope", None)]) == {"nope": (None, 0)}
    with pytest.raises(StoreError) as err:
        s.open(b, "nope")
    assert S3Store.is_missing(err.value)


def test_versions_newest_first_and_delete_markers(store: tuple[ObjectStore, str]) -> None:
    s, b = store
    s.put_bytes(b, "k", b"one")
    s.put_bytes(b, "k", b"two")
    old, new = reversed(s.list_versions(b, "k"))
    assert [new.is_latest, old.is_latest] == [True, False]
    assert s.read_bytes(b, "k", old.version_id) == b"one"
    s.delete(b, "k")  # what `aws s3 rm` does on a versioned bucket
    marker = s.list_versions(b, "k")[0]
    assert marker.is_delete_marker and marker.is_latest and len(s.list_versions(b, "k")) == 3
    assert s.read_bytes(b, "k") is None and not s.exists(b, "k") and s.list_keys(b, "") == []
    assert s.hash_object(b, "k", new.version_id)[0] == hashlib.sha256(b"two").hexdigest()
    s.delete(b, "k", marker.version_id)  # removing the marker brings the object back
    assert s.read_bytes(b, "k") == b"two"
    assert [v.version_id for v in s.list_versions(b, "k")] == [new.version_id, old.version_id]


def test_server_side_copy_and_permanent_delete(store: tuple[ObjectStore, str]) -> None:
    s, b = store
    s.put_bytes(b, "k", b"good")
    s.put_bytes(b, "k", b"corrupt")
    good = s.list_versions(b, "k")[1]
    s.copy_version(b, "k", good.version_id, b, "k")
    now = s.list_versions(b, "k")
    assert len(now) == 3 and now[0].etag == good.etag and s.read_bytes(b, "k") == b"good"
    for v in now:
        s.delete(b, "k", v.version_id)
    assert s.list_versions(b, "k") == [] and s.read_bytes(b, "k") is None


def test_streamed_uploads_hash_what_they_send(store: tuple[ObjectStore, str]) -> None:
    s, b = store
    small = b"x" * 1000
    assert s.upload_stream(b, "small", io.BytesIO(small)) == (
        hashlib.sha256(small).hexdigest(), len(small))
    big = bytes(range(256)) * (11 * MiB // 256)  # three parts of 5 MiB: a multipart ETag
    with concurrent.futures.ThreadPoolExecutor(2) as parts:
        sha, size = s.upload_hashed(b, "big", io.BytesIO(big), parts=parts,
                                    budget=PartBudget(3), part_size=5 * MiB, threshold=5 * MiB)
    assert (sha, size) == (hashlib.sha256(big).hexdigest(), len(big))
    assert s.list_versions(b, "big")[0].etag == s3_etag(big, 5 * MiB)
    assert s.hash_object(b, "big") == (sha, size)


def test_the_fence_refuses_writes_outside_the_declared_prefix(
        store: tuple[ObjectStore, str]) -> None:
    s, b = store
    s.put_bytes(b, "out/x", b"outside")
    s.fence = Fence([Touch.s3(s.target.name, b, "in/")])
    s.put_bytes(b, "in/x", b"inside")
    for write in (lambda: s.put_bytes(b, "out/x", b"changed"), lambda: s.delete(b, "out/x"),
                  lambda: s.ensure_bucket(f"{b}-other", versioned=False),
                  lambda: s.upload_stream(b, "out/y", io.BytesIO(b"y"))):
        with pytest.raises(GuardRefused):
            write()
    assert s.read_bytes(b, "out/x") == b"outside"  # reads are never fenced
    in_version = s.list_versions(b, "in/x")[0].version_id
    with pytest.raises(GuardRefused):
        s.copy_version(b, "in/x", in_version, b, "out/x")
    assert s.list_keys(b, "") == ["in/x", "out/x"]


def test_another_accounts_client_shares_the_data_and_is_not_fenced(
        store: tuple[ObjectStore, str]) -> None:
    s, b = store
    s.put_bytes(b, "in/x", b"one")
    s.fence = Fence([Touch.s3(s.target.name, b, "in/")])
    same = s.as_account("same-account", s.target.access_key.value, s.target.secret_key.value)
    assert same.fence is None and same.target.name == "same-account"
    assert same.read_bytes(b, "in/x") == b"one"
    same.put_bytes(b, "out/y", b"written as the account itself")  # no drill's fence on it
    assert s.read_bytes(b, "out/y") == b"written as the account itself"
    same.ping()


def test_a_key_the_store_does_not_know_is_refused(store: tuple[ObjectStore, str]) -> None:
    s, b = store
    stranger = s.as_account("stranger", f"NOSUCHKEY{secrets.token_hex(4).upper()}", "wrong")
    for call in (stranger.ping, lambda: stranger.list_keys(b, ""),
                 lambda: stranger.put_bytes(b, "k", b"never written")):
        with pytest.raises(TargetUnreachable, match="refused the credentials"):
            call()
    assert s.read_bytes(b, "k") is None
