"""The restore pipeline and snapshot proofs, without a lab: an in-memory S3 client behind the real
S3Store, and a fake restic repository that serves files from a dict."""

from __future__ import annotations

import concurrent.futures
import hashlib
import io
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from harness.errors import TargetUnreachable, UsageError
from harness.inventory import S3Target, Secret
from harness.proof import ProofCache, prove_snapshot
from harness.restore import RestoreTuning, hash_from_backup, restore_to_store
from harness.targets.restic import FileNode, Snapshot
from harness.targets.s3 import PartBudget, S3Store, StoreError

KiB = 1024


class FakeS3:
    """The five calls an upload makes, kept in memory; parts may be slowed down or fail."""

    def __init__(self, part_delay: float = 0.0, fail_part: int | None = None) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.aborted: list[str] = []
        self.puts = 0
        self.part_delay = part_delay
        self.fail_part = fail_part
        self._lock = threading.Lock()
        self._n = 0

    def put_object(self, *, Bucket: str, Key: str, Body: bytes) -> dict[str, Any]:
        self.objects[(Bucket, Key)] = bytes(Body)
        self.puts += 1
        return {"ETag": '"x"'}

    def create_multipart_upload(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        with self._lock:
            self._n += 1
            uid = f"u{self._n}"
        self.uploads[uid] = {}
        return {"UploadId": uid}

    def upload_part(self, *, Bucket: str, Key: str, UploadId: str,
                    PartNumber: int, Body: bytes) -> dict[str, Any]:
        time.sleep(self.part_delay)
        if PartNumber == self.fail_part:
            raise botocore.exceptions.ClientError(
                {"Error": {"Code": "InternalError", "Message": "boom"}}, "UploadPart")
        self.uploads[UploadId][PartNumber] = bytes(Body)
        return {"ETag": f'"{hashlib.md5(Body).hexdigest()}"'}

    def complete_multipart_upload(self, *, Bucket: str, Key: str, UploadId: str,
                                  MultipartUpload: dict[str, Any]) -> dict[str, Any]:
        parts = self.uploads.pop(UploadId)
        numbers = [p["PartNumber"] for p in MultipartUpload["Parts"]]
        assert numbers == sorted(parts), "parts completed out of order or missing"
        self.objects[(Bucket, Key)] = b"".join(parts[n] for n in numbers)
        return {}

    def abort_multipart_upload(self, *, Bucket: str, Key: str,
                               UploadId: str) -> dict[str, Any]:
        self.aborted.append(UploadId)
        self.uploads.pop(UploadId, None)
        return {}


def fake_store(client: FakeS3) -> S3Store:
    store = S3Store(S3Target("fake", "http://127.0.0.1:9", "default", Secret("k"), Secret("s"),
                             drill_safe=True))
    store._client = client
    return store


class CountingBudget(PartBudget):
    """Records the most part buffers ever held at once."""

    def __init__(self, parts: int) -> None:
        super().__init__(parts)
        self.held = 0
        self.most = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        super().acquire()
        with self._lock:
            self.held += 1
            self.most = max(self.most, self.held)

    def release(self) -> None:
        with self._lock:
            self.held -= 1
        super().release()


class DribbleStream(io.RawIOBase):
    """Returns at most ``step`` bytes per read, as a pipe does."""

    def __init__(self, data: bytes, step: int = 1000) -> None:
        self._buf = io.BytesIO(data)
        self._step = step

    def read(self, size: int = -1, /) -> bytes:
        return self._buf.read(min(size, self._step) if size >= 0 else self._step)


def data(n: int, seed: int = 0) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (n // len(block) + 1))[:n]


# -- upload_hashed -------------------------------------------------------------------------------


def test_upload_hashed_sends_parts_in_order_and_hashes_what_it_sent() -> None:
    client = FakeS3()
    store = fake_store(client)
    payload = data(5 * 64 * KiB + 123)
    budget = CountingBudget(3)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        sha, size = store.upload_hashed("b", "k", DribbleStream(payload), parts=pool,
                                        budget=budget, part_size=64 * KiB, threshold=32 * KiB)
    assert (sha, size) == (hashlib.sha256(payload).hexdigest(), len(payload))
    assert client.objects[("b", "k")] == payload
    assert client.puts == 0 and not client.aborted
    assert budget.held == 0


def test_small_objects_go_in_one_put() -> None:
    client = FakeS3()
    store = fake_store(client)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        sha, size = store.upload_hashed("b", "small", io.BytesIO(b"tiny"), parts=pool,
                                        budget=PartBudget(1), part_size=64 * KiB,
                                        threshold=32 * KiB)
        empty = store.upload_hashed("b", "empty", io.BytesIO(b""), parts=pool,
                                    budget=PartBudget(1))
    assert client.objects[("b", "small")] == b"tiny" and client.puts == 2
    assert sha == hashlib.sha256(b"tiny").hexdigest() and size == 4
    assert empty == (hashlib.sha256(b"").hexdigest(), 0)


def test_memory_is_bounded_by_the_part_budget_not_the_object() -> None:
    client = FakeS3(part_delay=0.02)  # a slow store: the reader must wait for the budget
    store = fake_store(client)
    budget = CountingBudget(2)
    payload = data(40 * 16 * KiB)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        store.upload_hashed("b", "k", io.BytesIO(payload), parts=pool, budget=budget,
                            part_size=16 * KiB, threshold=16 * KiB)
    assert budget.most == 2  # 40 parts went through, never more than 2 buffers alive
    assert budget.made <= 2  # and at most two buffers (reused) carried all of them
    assert client.objects[("b", "k")] == payload


def test_a_failed_part_aborts_the_upload_and_gives_the_budget_back() -> None:
    client = FakeS3(fail_part=3)
    store = fake_store(client)
    budget = CountingBudget(2)
    with concurrent.futures.ThreadPoolExecutor(2) as pool, \
            pytest.raises(StoreError, match="InternalError: boom"):
        store.upload_hashed("b", "k", io.BytesIO(data(10 * 16 * KiB)), parts=pool,
                            budget=budget, part_size=16 * KiB, threshold=16 * KiB)
    assert client.aborted == ["u1"] and ("b", "k") not in client.objects
    assert budget.held == 0


# -- a fake restic repository ------------------------------------------------------------------


class FakeRepo:
    """Files by snapshot path; chunk ids are the SHA-256 of 4 KiB chunks, as restic's would be."""

    def __init__(self, files: dict[str, bytes], base: str = "/backup/m") -> None:
        self.base = base
        self.data = dict(files)
        self.dumped: list[str] = []
        self.tree_reads = 0
        self.restored: list[Path] = []

    @contextmanager
    def dump(self, snapshot_id: str, path: str) -> Iterator[io.BytesIO]:
        rel = path[len(self.base) + 1:]
        if rel not in self.data:
            raise TargetUnreachable(f"restic dump {snapshot_id} {path} failed: not found")
        self.dumped.append(rel)
        yield io.BytesIO(self.data[rel])

    def restore(self, snapshot_id: str, path: str, target: Path,
                includes: list[str] | None = None) -> Path:
        root = target / path.strip("/")
        for rel in includes or list(self.data):
            if rel not in self.data:
                continue  # as restic: an include that matches nothing is no error
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(self.data[rel])
        self.restored.append(target)
        return root

    def files(self, snapshot: Snapshot, path: str,
              trees: dict[str, Any] | None = None) -> dict[str, FileNode]:
        self.tree_reads += 1
        out = {}
        for rel, blob in self.data.items():
            chunks = tuple(hashlib.sha256(blob[i:i + 4096]).hexdigest()
                           for i in range(0, len(blob), 4096))
            out[rel] = FileNode(rel, len(blob), chunks)
        return out


def snapshot(sid: str, tree: str) -> Snapshot:
    return Snapshot(sid, sid[:8], datetime(2026, 11, 1, tzinfo=UTC), ("/backup/m",), (), tree)


FILES = {"config.json": b'{"a": 1}', "model-1.safetensors": data(300 * KiB, 1),
         "model-2.safetensors": data(200 * KiB, 2), "sub/extra.bin": data(70 * KiB, 3)}


@pytest.mark.parametrize("method", ["dump", "restore"])
def test_restore_to_store_brings_every_file_back_hashed(method: str, tmp_path: Path) -> None:
    repo = FakeRepo(FILES)
    client = FakeS3()
    tuning = RestoreTuning(files=3, upload_threads=2, parts=3, part_size=64 * KiB, method=method)
    report = restore_to_store(repo, "s1", "/backup/m", {rel: "p/" + rel for rel in FILES},  # type: ignore[arg-type]
                              fake_store(client), "bkt", tuning=tuning, scratch=tmp_path / "s")
    for rel, blob in FILES.items():
        assert client.objects[("bkt", "p/" + rel)] == blob
        assert report.transfers["p/" + rel].sha256 == hashlib.sha256(blob).hexdigest()
    assert report.bytes == sum(len(b) for b in FILES.values())
    assert report.method == method
    assert list(report.hashes()) == ["p/" + rel for rel in FILES]  # the caller's order
    if method == "restore":
        assert repo.restored and not any((tmp_path / "s").iterdir())  # scratch cleaned up
    else:
        assert sorted(repo.dumped) == sorted(FILES)


@pytest.mark.parametrize("method", ["dump", "restore"])
def test_a_file_restic_cannot_deliver_fails_the_restore(method: str, tmp_path: Path) -> None:
    repo = FakeRepo(FILES)
    with pytest.raises(TargetUnreachable, match="not found"):
        restore_to_store(repo, "s1", "/backup/m", {"missing.bin": "p/missing.bin",  # type: ignore[arg-type]
                                                   "config.json": "p/config.json"},
                         fake_store(FakeS3()), "bkt", tuning=RestoreTuning(files=2, method=method),
                         scratch=tmp_path)


def test_hash_from_backup_reads_each_file_once() -> None:
    repo = FakeRepo(FILES)
    got = hash_from_backup(repo, "s1", "/backup/m", sorted(FILES), files=2)  # type: ignore[arg-type]
    assert got == {rel: (hashlib.sha256(b).hexdigest(), len(b)) for rel, b in FILES.items()}
    assert sorted(repo.dumped) == sorted(FILES)


def test_tuning_from_environment() -> None:
    t = RestoreTuning.from_env({"DRILLBOOK_RESTORE_FILES": "2", "DRILLBOOK_RESTORE_PARTS": "5",
                                "DRILLBOOK_RESTORE_METHOD": "restore"})
    assert (t.files, t.parts, t.method, t.upload_threads) == (2, 5, "restore", 5)
    assert RestoreTuning.from_env({"DRILLBOOK_RESTORE_GROUPS": "3"}).groups == 3
    assert RestoreTuning.from_env({}) == RestoreTuning()
    with pytest.raises(UsageError, match="whole number"):
        RestoreTuning.from_env({"DRILLBOOK_RESTORE_FILES": "many"})
    with pytest.raises(UsageError, match="not one of"):
        RestoreTuning(method="tar")
    with pytest.raises(UsageError, match="at least 1"):
        RestoreTuning(parts=0)


# -- proofs ------------------------------------------------------------------------------------


def expected_of(files: dict[str, bytes]) -> dict[str, tuple[str, int]]:
    return {rel: (hashlib.sha256(b).hexdigest(), len(b)) for rel, b in files.items()}


def test_first_proof_reads_everything_then_content_ids_prove_later_snapshots(
        tmp_path: Path) -> None:
    cache = ProofCache(tmp_path / "proofs.json")
    repo = FakeRepo(FILES)
    first = prove_snapshot(repo, snapshot("s1", "t1"), "/backup/m", expected_of(FILES),  # type: ignore[arg-type]
                           cache, sample=1, seed="d1")
    assert first.ok and first.kind == "full-read"
    assert sorted(first.hashed) == sorted(FILES) and first.bytes_read == sum(map(len,
                                                                                 FILES.values()))
    # another snapshot (new root tree) of the same content: trees only, plus one sampled file
    repo.dumped.clear()
    second = prove_snapshot(repo, snapshot("s2", "t2"), "/backup/m", expected_of(FILES),  # type: ignore[arg-type]
                            cache, sample=1, seed="d2")
    assert second.ok and second.kind == "content-cache+sample1"
    assert len(repo.dumped) == 1 and repo.dumped == list(second.sampled)
    assert len(second.cached) == len(FILES) - 1
    assert second.detail()["proof"] == "content-cache+sample1"
    # the very same root tree: no tree read at all
    reads = repo.tree_reads
    repo.dumped.clear()
    third = prove_snapshot(repo, snapshot("s3", "t2"), "/backup/m", expected_of(FILES),  # type: ignore[arg-type]
                           cache, sample=0)
    assert third.ok and third.kind == "snapshot-cache"
    assert repo.tree_reads == reads and repo.dumped == []


def test_proof_rejects_changed_missing_and_resized_files(tmp_path: Path) -> None:
    cache = ProofCache(tmp_path / "proofs.json")
    good = expected_of(FILES)
    changed = dict(FILES, **{"model-2.safetensors": data(200 * KiB, 99)})  # same size
    proof = prove_snapshot(FakeRepo(changed), snapshot("s1", "t1"), "/backup/m", good,  # type: ignore[arg-type]
                           cache, sample=0)
    assert not proof.ok and proof.bad == ("model-2.safetensors",)
    assert "hashes differently" in proof.reasons["model-2.safetensors"]
    # once read, that content is known to be wrong: later proofs reject it without reading
    repo = FakeRepo(changed)
    again = prove_snapshot(repo, snapshot("s2", "t2"), "/backup/m", good, cache, sample=0)  # type: ignore[arg-type]
    assert again.bad == ("model-2.safetensors",) and "model-2.safetensors" not in repo.dumped
    # a missing file and a file of the wrong size are rejected from the tree alone
    short = {k: v for k, v in FILES.items() if k != "config.json"}
    short["model-1.safetensors"] = FILES["model-1.safetensors"][:-1]
    repo = FakeRepo(short)
    bad = prove_snapshot(repo, snapshot("s3", "t3"), "/backup/m", good, None, sample=0)  # type: ignore[arg-type]
    assert bad.bad == ("config.json", "model-1.safetensors")
    assert bad.reasons["config.json"] == "not in the snapshot"
    assert repo.dumped == []


def test_a_damaged_sample_fails_a_snapshot_proven_before(tmp_path: Path) -> None:
    cache = ProofCache(tmp_path / "proofs.json")
    assert prove_snapshot(FakeRepo(FILES), snapshot("s1", "t1"), "/backup/m",  # type: ignore[arg-type]
                          expected_of(FILES), cache, sample=0).ok
    # same root tree id, but the repository now delivers other bytes for every file (damage)
    rotten = {k: data(len(v), 7) for k, v in FILES.items()}
    proof = prove_snapshot(FakeRepo(rotten), snapshot("s2", "t1"), "/backup/m",  # type: ignore[arg-type]
                           expected_of(FILES), cache, sample=2, seed="x")
    assert proof.kind == "snapshot-cache+sample2" and len(proof.bad) == 2


def test_upload_stream_is_the_same_bounded_upload() -> None:
    client = FakeS3()
    store = fake_store(client)
    payload = data(20 * 1024 * KiB + 5)  # over the 16 MiB part size: two parts
    assert store.upload_stream("b", "big", DribbleStream(payload, 65536)) == (
        hashlib.sha256(payload).hexdigest(), len(payload))
    assert client.objects[("b", "big")] == payload and client.puts == 0


def test_a_group_is_uploaded_while_the_other_group_still_restores(tmp_path: Path) -> None:
    """The second group's restic does not finish until the first group's files are in the
    store: only an overlapped pipeline gets through (a serial one would wait out the timeout)."""
    first_sent = threading.Event()

    class Client(FakeS3):
        def put_object(self, *, Bucket: str, Key: str, Body: bytes) -> dict[str, Any]:
            out = super().put_object(Bucket=Bucket, Key=Key, Body=Body)
            if Key == "p/config.json":
                first_sent.set()
            return out

    class SlowSecondGroup(FakeRepo):
        def restore(self, snapshot_id: str, path: str, target: Path,
                    includes: list[str] | None = None) -> Path:
            if includes and "config.json" not in includes:
                assert first_sent.wait(timeout=10), "the first group was not sent meanwhile"
            return super().restore(snapshot_id, path, target, includes)

    files = {"config.json": b'{"a": 1}', "model-1.safetensors": data(300 * KiB, 1)}
    client = Client()
    report = restore_to_store(SlowSecondGroup(files), "s1", "/backup/m",  # type: ignore[arg-type]
                              {rel: "p/" + rel for rel in files}, fake_store(client), "bkt",
                              tuning=RestoreTuning(groups=2, part_size=64 * KiB),
                              scratch=tmp_path)
    assert report.method == "restore" and report.bytes == sum(len(b) for b in files.values())
    assert client.objects[("bkt", "p/model-1.safetensors")] == files["model-1.safetensors"]
