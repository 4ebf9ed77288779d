"""The backup repository contract: the same assertions against the in-memory FakeRepo (lab-free)
and the real ResticRepo on the lab's repository (marked ``lab``, read-only): snapshots oldest
first, restic's trees (sizes and content ids, no data read), files streamed out of a snapshot
(one by one, or a whole directory in one stream), restores to disk, restic's own error for a
path a snapshot lacks."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.errors import TargetUnreachable
from harness.fakes.restic import FakeRepo
from harness.integrity import Manifest
from harness.inventory import ResticTarget
from harness.inventory.model import Secret
from harness.restore import hash_from_backup
from harness.targets.protocols import BackupRepo

#: relative path -> sha256 of files a snapshot of the path holds
Expected = dict[str, str]


def _fake() -> tuple[BackupRepo, str, Expected]:
    repo = FakeRepo(ResticTarget("fake-repo", "s3:http://127.0.0.1:9/r", Secret("pw"), None,
                                 None, drill_safe=False))
    files = {"model.safetensors": b"\x01" * 5000, "config.json": json.dumps({"a": 1}).encode(),
             "sub/notes.txt": b"notes"}
    repo.add_snapshot("/stage/models", {"config.json": b"{}"})
    repo.add_snapshot("/stage/models", files)
    repo.add_snapshot("/elsewhere", {"x": b"x"})
    return repo, "/stage/models", {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}


def _real(lab: Any) -> tuple[BackupRepo, str, Expected]:
    manifest = Manifest.load(lab.asset_dir / "manifest.json")
    return lab.restic(), str(lab.stage_dir), {f.path: f.sha256 for f in manifest.files}


@pytest.fixture(params=["fake", pytest.param("lab", marks=pytest.mark.lab)])
def backup(request: pytest.FixtureRequest) -> Iterator[tuple[BackupRepo, str, Expected]]:
    yield _fake() if request.param == "fake" else _real(request.getfixturevalue("lab"))


def test_snapshots_of_a_path_oldest_first(backup: tuple[BackupRepo, str, Expected]) -> None:
    repo, path, _ = backup
    snaps = repo.snapshots(path=path)
    assert snaps and [s.time for s in snaps] == sorted(s.time for s in snaps)
    assert all(path in s.paths and s.tree and s.id.startswith(s.short_id) for s in snaps)
    assert set(repo.snapshots()) >= set(snaps)


def test_trees_list_sizes_and_content_ids(backup: tuple[BackupRepo, str, Expected]) -> None:
    repo, path, expected = backup
    snap = repo.snapshots(path=path)[-1]
    nodes = repo.files(snap, path)
    assert set(expected) <= set(nodes)
    for rel in expected:
        assert nodes[rel].path == rel and nodes[rel].size > 0 and nodes[rel].content
    # content-addressed: the same listing every time, the same id for the same chunks
    again = repo.files(snap, path, {})
    assert {r: n.content_id for r, n in again.items()} == \
        {r: n.content_id for r, n in nodes.items()}


def test_files_stream_out_as_backed_up(backup: tuple[BackupRepo, str, Expected],
                                       tmp_path: Path) -> None:
    repo, path, expected = backup
    snap = repo.snapshots(path=path)[-1]
    rel = min(expected)
    with repo.dump(snap.id, f"{path}/{rel}") as stream:
        assert hashlib.sha256(stream.read()).hexdigest() == expected[rel]
    got = hash_from_backup(repo, snap.id, path, sorted(expected), files=2)  # type: ignore[arg-type]
    assert {r: h for r, (h, _) in got.items()} == expected
    root = repo.restore(snap.id, path, tmp_path, includes=[rel])
    assert hashlib.sha256((root / rel).read_bytes()).hexdigest() == expected[rel]


def test_a_path_the_snapshot_lacks_is_restics_error(
        backup: tuple[BackupRepo, str, Expected]) -> None:
    repo, path, _ = backup
    snap = repo.snapshots(path=path)[-1]
    with pytest.raises(TargetUnreachable), repo.dump(snap.id, f"{path}/no-such-file") as stream:
        stream.read()


def test_a_directory_streams_out_file_by_file(backup: tuple[BackupRepo, str, Expected]) -> None:
    repo, path, expected = backup
    snap = repo.snapshots(path=path)[-1]
    got: dict[str, str] = {}
    with repo.dump_tree(snap.id, path) as files:
        for rel, stream in files:
            got[rel] = hashlib.sha256(stream.read()).hexdigest()
    assert {r: got.get(r) for r in expected} == expected
