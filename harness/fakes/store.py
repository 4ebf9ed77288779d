"""An in-memory S3 store.

:class:`~harness.targets.protocols.ObjectStore` is the part of :class:`harness.targets.s3.S3Store`
that scenarios, runbook steps, the safety copy and the restore pipeline call.
:class:`FakeStore` implements it in memory with what makes drills honest: versioned and
unversioned buckets, delete markers, version ids, ``ETag`` as S3 computes it (MD5, or MD5 of the
part MD5s for a multipart upload), the ``fence`` attribute with the same refusals as the real
adapter, and the real adapter's errors (a missing key is a
:class:`~harness.targets.s3.StoreError` with code ``NoSuchKey``). ``tests/contracts`` runs the
same assertions against both.

Accounts: ``as_account`` is another client of the same gateway under other keys, unfenced, as
the real adapter's is; when the store is given ``accounts`` (what RGW asks its users, e.g.
:meth:`harness.fakes.rgwadmin.FakeRgwAdmin.authenticate`), every call first has its keys checked
and a refused key is :class:`~harness.errors.TargetUnreachable` "refused the credentials", with
RGW's error code, as the real adapter says it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import io
import itertools
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from harness.blast import Fence
from harness.errors import TargetUnreachable
from harness.integrity import Readable
from harness.inventory import S3Target, Secret
from harness.model import utc_now
from harness.targets.protocols import Hashes
from harness.targets.s3 import (
    MULTIPART_THRESHOLD,
    PART_SIZE,
    ObjectVersion,
    PartBudget,
    StoreError,
    read_part,
)

#: (access key, secret key) -> None when the gateway accepts them, else RGW's error code.
Authenticate = Callable[[str, str], "str | None"]


@dataclass
class _Version:
    version_id: str
    data: bytes | None  # None: a delete marker
    etag: str
    written: datetime


@dataclass
class _Bucket:
    versioned: bool
    #: key -> versions, newest first
    keys: dict[str, list[_Version]] = field(default_factory=dict)


def s3_etag(data: bytes, part_size: int | None = None) -> str:
    """The ETag S3 gives an object: MD5 of a single PUT, or MD5 of the parts' MD5s and ``-N``."""
    if part_size is None or len(data) <= part_size:
        return hashlib.md5(data, usedforsecurity=False).hexdigest()
    digests = b"".join(hashlib.md5(data[i:i + part_size], usedforsecurity=False).digest()
                       for i in range(0, len(data), part_size))
    parts = (len(data) + part_size - 1) // part_size
    return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{parts}"


@dataclass
class _Gateway:
    """What every client of one fake gateway shares (one per FakeStore and its accounts)."""

    now: Callable[[], datetime]
    accounts: Authenticate | None
    unreachable: bool = False
    buckets: dict[str, _Bucket] = field(default_factory=dict)
    ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    lock: threading.RLock = field(default_factory=threading.RLock)


class FakeStore:
    """An S3 store in memory. ``now`` dates every write (hand in a ManualClock's ``utc``);
    ``unreachable`` makes every call raise TargetUnreachable, as a stopped gateway does;
    ``accounts`` checks the keys of every call (None: every key is good)."""

    def __init__(self, target: S3Target, *, now: Callable[[], datetime] = utc_now,
                 accounts: Authenticate | None = None) -> None:
        self.target = target
        self.fence: Fence | None = None
        self._gw = _Gateway(now, accounts)
        self._buckets = self._gw.buckets
        self._ids = self._gw.ids
        self._lock = self._gw.lock

    @property
    def now(self) -> Callable[[], datetime]:
        return self._gw.now

    @property
    def unreachable(self) -> bool:
        return self._gw.unreachable

    @unreachable.setter
    def unreachable(self, value: bool) -> None:
        self._gw.unreachable = value  # the gateway is down for every client of it

    def as_account(self, label: str, access_key: str, secret_key: str) -> FakeStore:
        """The same gateway under another account's keys, unfenced (it acts as that account,
        outside any drill's declared resources), as the real adapter's."""
        t = self.target
        return self._client(S3Target(label, t.endpoint, t.region, Secret(access_key),
                                     Secret(secret_key), False))

    def _client(self, target: S3Target) -> FakeStore:
        other = FakeStore(target)
        other._gw = self._gw
        other._buckets, other._ids, other._lock = self._buckets, self._ids, self._lock
        return other

    # -- set-up for tests ------------------------------------------------------------------------

    def create_bucket(self, bucket: str, *, versioned: bool = True) -> None:
        with self._lock:
            self._buckets.setdefault(bucket, _Bucket(versioned))

    def view(self, label: str) -> FakeStore:
        """Another client of the same data with this store's own keys, unfenced: a site's job
        or tool writing beside a drill, which no drill's fence applies to."""
        return self._client(dataclasses.replace(self.target, name=label))

    def bucket_usage(self, bucket: str) -> tuple[int, int]:
        """(bytes, objects) of a bucket, every version counted and delete markers not, as RGW
        counts them for quotas (hand it to FakeRgwAdmin as its ``usage``)."""
        with self._lock:
            b = self._buckets.get(bucket)
            held = [v for h in (b.keys.values() if b else ()) for v in h if v.data is not None]
            return sum(len(v.data or b"") for v in held), len(held)

    # -- helpers -------------------------------------------------------------------------------

    def _reach(self, what: str) -> None:
        if self.unreachable:
            raise TargetUnreachable(f"store {self.target.name} ({self.target.endpoint}) "
                                    f"unreachable during {what}: connection refused")
        accounts = self._gw.accounts
        if accounts is not None:
            code = accounts(self.target.access_key.value, self.target.secret_key.value)
            if code is not None:
                raise TargetUnreachable(f"store {self.target.name} refused the credentials "
                                        f"during {what}: {code}")

    def _bucket(self, bucket: str, what: str) -> _Bucket:
        self._reach(what)
        if bucket not in self._buckets:
            raise StoreError(f"store {self.target.name} refused {what}: NoSuchBucket: The "
                             f"specified bucket does not exist", "NoSuchBucket")
        return self._buckets[bucket]

    def _may_write(self, bucket: str, key: str) -> None:
        if self.fence is not None:
            self.fence.check_s3(self.target.name, bucket, key)

    def _find(self, bucket: str, key: str, version_id: str | None, what: str) -> _Version:
        history = self._bucket(bucket, what).keys.get(key, [])
        if version_id:
            for v in history:
                if v.version_id == version_id:
                    if v.data is None:
                        raise StoreError(f"store {self.target.name} refused {what}: "
                                         f"MethodNotAllowed", "405")
                    return v
            raise StoreError(f"store {self.target.name} refused {what}: NoSuchVersion: The "
                             f"specified version does not exist.", "NoSuchVersion")
        if not history or history[0].data is None:
            raise StoreError(f"store {self.target.name} refused {what}: NoSuchKey: The "
                             f"specified key does not exist.", "NoSuchKey")
        return history[0]

    def _write(self, bucket: str, key: str, data: bytes | None, etag: str) -> None:
        """A new current version (or delete marker); an unversioned bucket keeps only it."""
        with self._lock:
            b = self._bucket(bucket, "put object")
            vid = f"v{next(self._ids):06d}" if b.versioned else "null"
            history = b.keys.setdefault(key, [])
            if not b.versioned:
                history.clear()
                if data is None:
                    del b.keys[key]
                    return
            history.insert(0, _Version(vid, data, etag, self._gw.now()))

    @staticmethod
    def is_missing(exc: BaseException) -> bool:
        return isinstance(exc, StoreError) and exc.code in {"NoSuchKey", "404", "NotFound",
                                                            "NoSuchVersion"}

    # -- reads -----------------------------------------------------------------------------------

    def ping(self) -> None:
        self._reach("ping")

    def versioning_enabled(self, bucket: str) -> bool:
        return self._bucket(bucket, "get versioning").versioned

    def list_versions(self, bucket: str, prefix: str) -> list[ObjectVersion]:
        """Every version and delete marker under prefix, newest first per key."""
        with self._lock:
            b = self._bucket(bucket, "list versions")
            return [ObjectVersion(key, v.version_id, i == 0, v.data is None, v.written, v.etag,
                                  0 if v.data is None else len(v.data))
                    for key in sorted(b.keys) if key.startswith(prefix)
                    for i, v in enumerate(b.keys[key])]

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        with self._lock:
            b = self._bucket(bucket, "list objects")
            return [k for k in sorted(b.keys)
                    if k.startswith(prefix) and b.keys[k] and b.keys[k][0].data is not None]

    def exists(self, bucket: str, key: str) -> bool:
        try:
            self._find(bucket, key, None, f"head object s3://{bucket}/{key}")
            return True
        except StoreError as exc:
            if self.is_missing(exc):
                return False
            raise

    def read_bytes(self, bucket: str, key: str, version_id: str | None = None) -> bytes | None:
        try:
            return self.open(bucket, key, version_id).read()
        except StoreError as exc:
            if self.is_missing(exc):
                return None
            raise

    def open(self, bucket: str, key: str, version_id: str | None = None) -> Readable:
        with self._lock:
            v = self._find(bucket, key, version_id, f"get object s3://{bucket}/{key}")
        assert v.data is not None
        return io.BytesIO(v.data)

    def hash_object(self, bucket: str, key: str,
                    version_id: str | None = None) -> tuple[str | None, int]:
        try:
            data = self.open(bucket, key, version_id).read()
        except StoreError as exc:
            if self.is_missing(exc):
                return None, 0
            raise
        return hashlib.sha256(data).hexdigest(), len(data)

    def hash_objects(self, bucket: str, keys: list[tuple[str, str | None]]) -> Hashes:
        return {key: self.hash_object(bucket, key, vid) for key, vid in keys}

    # -- writes ----------------------------------------------------------------------------------

    def ensure_bucket(self, bucket: str, versioned: bool) -> None:
        if self.fence is not None:
            self.fence.check_bucket(self.target.name, bucket)
        self._reach("create bucket")
        with self._lock:
            b = self._buckets.setdefault(bucket, _Bucket(versioned))
            b.versioned = b.versioned or versioned  # S3 versioning can be suspended, not undone

    def upload_stream(self, bucket: str, key: str, stream: Readable) -> tuple[str, int]:
        with concurrent.futures.ThreadPoolExecutor(1) as parts:
            return self.upload_hashed(bucket, key, stream, parts=parts, budget=PartBudget(2))

    def upload_hashed(self, bucket: str, key: str, stream: Readable, *,
                      parts: concurrent.futures.Executor, budget: PartBudget,
                      part_size: int = PART_SIZE,
                      threshold: int = MULTIPART_THRESHOLD) -> tuple[str, int]:
        self._may_write(bucket, key)
        chunks: list[bytes] = []
        while True:
            budget.acquire()  # the real adapter holds a unit per part buffer; so does this one
            try:
                block = read_part(stream, part_size)
            finally:
                budget.release()
            if not block:
                break
            chunks.append(block)
        data = b"".join(chunks)
        multipart = len(data) >= min(threshold, part_size)
        self._write(bucket, key, data, s3_etag(data, part_size if multipart else None))
        return hashlib.sha256(data).hexdigest(), len(data)

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        self._may_write(bucket, key)
        self._write(bucket, key, bytes(data), s3_etag(data))

    def delete(self, bucket: str, key: str, version_id: str | None = None) -> None:
        """Without a version: a delete marker on a versioned bucket. With one: gone for good
        (deleting a version that does not exist succeeds, as in S3)."""
        self._may_write(bucket, key)
        with self._lock:
            b = self._bucket(bucket, "delete object")
            if not version_id:
                if b.versioned:
                    self._write(bucket, key, None, "")
                else:
                    b.keys.pop(key, None)
                return
            history = b.keys.get(key, [])
            b.keys[key] = [v for v in history if v.version_id != version_id]
            if not b.keys[key]:
                del b.keys[key]

    def copy_version(self, src_bucket: str, key: str, version_id: str, dest_bucket: str,
                     dest_key: str) -> None:
        self._may_write(dest_bucket, dest_key)
        with self._lock:
            v = self._find(src_bucket, key, version_id, f"copy object s3://{src_bucket}/{key}")
            assert v.data is not None
            self._write(dest_bucket, dest_key, v.data, v.etag)

    # -- conditional writes (drill leases) -------------------------------------------------------

    def put_conditional(self, bucket: str, key: str, data: bytes, *,
                        if_match: str | None = None) -> str | None:
        with self._lock:
            b = self._bucket(bucket, "conditional put")
            history = b.keys.get(key, [])
            current = history[0] if history and history[0].data is not None else None
            if (if_match is None and current is not None) or \
                    (if_match is not None and (current is None or current.etag != if_match)):
                return None
            self._write(bucket, key, bytes(data), s3_etag(data))
            return b.keys[key][0].etag

    def read_with_etag(self, bucket: str, key: str) -> tuple[bytes, str] | None:
        with self._lock:
            try:
                v = self._find(bucket, key, None, f"get object s3://{bucket}/{key}")
            except StoreError as exc:
                if self.is_missing(exc):
                    return None
                raise
        assert v.data is not None
        return v.data, v.etag
