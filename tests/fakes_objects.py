"""Stand-ins for the object-store, restic and inference fakes, for the data and fleet scenario
tests until the object-store branch's fakes (harness/fakes/) land: just the methods those
scenarios call, with the same meaning as the real adapters. Replace with the shared fakes when
merging; the contract tests for store, restic and inference live with those."""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any

from harness.blast import Fence
from harness.errors import Inconclusive, TargetUnreachable
from harness.inventory import ResticTarget, Secret
from harness.journal import Clock
from harness.targets.restic import Snapshot
from harness.targets.s3 import ObjectVersion, StoreError

#: (access key, secret key) -> None when the store accepts them, else the S3 error code.
Authenticate = Callable[[str, str], "str | None"]


@dataclass
class _Version:
    key: str
    version_id: str
    data: bytes | None  # None: a delete marker
    written: datetime


class FakeStore:
    """A versioned S3 store in memory. ``fence`` is honoured for writes as the real one does."""

    def __init__(self, name: str, clock: Clock, *, auth: Authenticate | None = None) -> None:
        self.name = name
        self.clock = clock
        self.fence: Fence | None = None
        self._buckets: dict[str, list[_Version]] = {}
        self._auth = auth
        self._lock = threading.RLock()
        self._serial = 0
        self._account: tuple[str, str] | None = None

    # -- accounts ------------------------------------------------------------------------------

    def as_account(self, label: str, access_key: str, secret_key: str) -> FakeStore:
        view = FakeStore(label, self.clock, auth=self._auth)
        view._buckets, view._lock, view._account = self._buckets, self._lock, (access_key,
                                                                                  secret_key)
        return view

    def view(self, label: str) -> FakeStore:
        """The same data as another client sees it (a job's own client): not fenced."""
        view = FakeStore(label, self.clock, auth=self._auth)
        view._buckets, view._lock = self._buckets, self._lock
        return view

    def _check(self, what: str) -> None:
        if self._account is None or self._auth is None:
            return
        code = self._auth(*self._account)
        if code is not None:
            raise TargetUnreachable(f"store {self.name} refused the credentials during {what}: "
                                    f"{code}")

    def ping(self) -> None:
        self._check("ping")

    # -- reads ---------------------------------------------------------------------------------

    def _current(self, bucket: str, key: str, version_id: str | None = None) -> _Version | None:
        versions = [v for v in self._buckets.get(bucket, []) if v.key == key]
        if version_id is not None:
            versions = [v for v in versions if v.version_id == version_id]
        return versions[-1] if versions else None

    def list_versions(self, bucket: str, prefix: str) -> list[ObjectVersion]:
        with self._lock:
            self._check("list versions")
            out = []
            by_key: dict[str, list[_Version]] = {}
            for v in self._buckets.get(bucket, []):
                if v.key.startswith(prefix):
                    by_key.setdefault(v.key, []).append(v)
            for key in sorted(by_key):
                vs = by_key[key]
                for i, v in enumerate(reversed(vs)):
                    out.append(ObjectVersion(key, v.version_id, i == 0, v.data is None,
                                             v.written, "", len(v.data or b"")))
            return out

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        with self._lock:
            self._check("list objects")
            keys = {v.key for v in self._buckets.get(bucket, []) if v.key.startswith(prefix)}
            return sorted(k for k in keys if (c := self._current(bucket, k)) and c.data is not None)

    def read_bytes(self, bucket: str, key: str, version_id: str | None = None) -> bytes | None:
        with self._lock:
            self._check("read object")
            v = self._current(bucket, key, version_id)
            return None if v is None else v.data

    def open(self, bucket: str, key: str, version_id: str | None = None) -> IO[bytes]:
        data = self.read_bytes(bucket, key, version_id)
        if data is None:
            raise StoreError(f"store {self.name} refused get object s3://{bucket}/{key}: "
                             f"NoSuchKey", "NoSuchKey")
        return io.BytesIO(data)

    def hash_objects(self, bucket: str,
                     keys: list[tuple[str, str | None]]) -> dict[str, tuple[str | None, int]]:
        out: dict[str, tuple[str | None, int]] = {}
        for key, vid in keys:
            data = self.read_bytes(bucket, key, vid)
            out[key] = (None, 0) if data is None else (hashlib.sha256(data).hexdigest(), len(data))
        return out

    def bucket_bytes(self, bucket: str) -> tuple[int, int]:
        """(bytes, objects) of a bucket, every version counted (as RGW counts for quotas)."""
        with self._lock:
            vs = [v for v in self._buckets.get(bucket, []) if v.data is not None]
            return sum(len(v.data or b"") for v in vs), len(vs)

    # -- writes --------------------------------------------------------------------------------

    def _append(self, bucket: str, key: str, data: bytes | None) -> None:
        if self.fence is not None:
            self.fence.check_s3(self.name, bucket, key)
        self._check("put object")
        self._serial += 1
        self._buckets.setdefault(bucket, []).append(
            _Version(key, f"v{self._serial:06d}", data, self.clock.utc()))

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        with self._lock:
            self._append(bucket, key, data)

    def upload_stream(self, bucket: str, key: str, stream: IO[bytes]) -> tuple[str, int]:
        data = stream.read()
        self.put_bytes(bucket, key, data)
        return hashlib.sha256(data).hexdigest(), len(data)

    def delete(self, bucket: str, key: str, version_id: str | None = None) -> None:
        with self._lock:
            if version_id is None:
                self._append(bucket, key, None)
                return
            if self.fence is not None:
                self.fence.check_s3(self.name, bucket, key)
            self._check("delete object")
            self._buckets[bucket] = [v for v in self._buckets.get(bucket, [])
                                     if not (v.key == key and v.version_id == version_id)]


class FakeRestic:
    """A restic repository whose snapshots are copies of a store prefix, each also written as
    one object into the repository's bucket (so it counts against that bucket's quota)."""

    def __init__(self, target: ResticTarget, clock: Clock, store: FakeStore) -> None:
        self.target = target
        self.clock = clock
        self.store = store
        self._snaps: list[tuple[Snapshot, dict[str, bytes]]] = []
        bucket, _, prefix = target.repository.split("://", 1)[-1].split("/", 1)[-1].partition("/")
        self._bucket, self._prefix = bucket, prefix.rstrip("/") + "/"

    def snapshots(self, path: str | None = None) -> list[Snapshot]:
        return [s for s, _ in self._snaps if path is None or path in s.paths]

    def backup_prefix(self, path: str, files: dict[str, bytes], writer: FakeStore) -> Snapshot:
        """A snapshot of ``files`` (relative path -> bytes) as ``path``, written through
        ``writer`` (the backup account's view of the store: it may be refused)."""
        n = len(self._snaps) + 1
        sid = hashlib.sha256(f"{self.target.name}-{n}".encode()).hexdigest()
        blob = b"".join(files.values())
        writer.put_bytes(self._bucket, f"{self._prefix}snapshots/{sid}", blob)
        snap = Snapshot(sid, sid[:8], self.clock.utc(), (path,), ())
        self._snaps.append((snap, dict(files)))
        return snap

    @contextmanager
    def dump_tree(self, snapshot_id: str, path: str) -> Iterator[Iterator[tuple[str, IO[bytes]]]]:
        files = next(f for s, f in self._snaps if s.id == snapshot_id)
        yield iter([(rel, io.BytesIO(data)) for rel, data in sorted(files.items())])

    def run(self, *args: str, timeout_s: float | None = None) -> str:
        if args[0] == "unlock":
            return ""
        if args[0] == "forget" and "--keep-last" in args:
            keep = int(args[args.index("--keep-last") + 1])
            gone, self._snaps = self._snaps[:-keep], self._snaps[-keep:]
            for snap, _ in gone:
                self.store.delete(self._bucket, f"{self._prefix}snapshots/{snap.id}")
            return ""
        raise Inconclusive(f"the fake restic does not do {' '.join(args)}")


def restic_target(name: str, repository: str) -> ResticTarget:
    return ResticTarget(name, repository, Secret("pw"), None, None, False)


class FakeEndpoint:
    """An inference endpoint answering a fixed function of its inputs (the golden model)."""

    def __init__(self, target: Any, answer: Callable[[list[list[float]]], list[list[float]]]
                 ) -> None:
        self.target = target
        self.answer = answer

    def infer(self, inputs: list[list[float]]) -> list[list[float]]:
        return self.answer(inputs)
