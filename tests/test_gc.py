"""``drillbook gc`` without a store: an in-memory stand-in for the few S3Store calls gc makes,
and leases handed in as records. What must hold: a safety copy goes only when nothing needs it,
a copy that is the only way back stays, leases are never touched, a dry run changes nothing."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.blast import Touch
from harness.errors import TargetUnreachable
from harness.gc import collect, still_missing
from harness.guards import FOUND_STATE, FOUND_STATE_FORMAT, FoundVersion
from harness.inventory import Inventory, load_inventory
from harness.lease import FoundLease, LeaseRecord, LeaseState, SafetyRecord
from harness.lease_stores import LEASE_PREFIX, MemoryLeaseStore
from harness.targets.s3 import ObjectVersion, StoreError

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=2)
SAFETY = "drillbook-safety"

INVENTORY = """\
version: 1
site: test-site
targets:
  store:
    kind: s3
    endpoint: http://127.0.0.1:8080
    access_key: AK
    secret_key: SK
    drill_safe: true
  rgw-admin:
    kind: rgw-admin
    conf: {conf}
    drill_safe: true
assets:
  - id: weights
    tier: 1
    kind: model-weights
    store: store
    bucket: models
    prefix: m/
guards:
  safety_bucket: {safety}
objectives:
  tiers:
    1: {{rto_s: 300, rpo_s: 86400}}
"""


def inventory(tmp_path: Path) -> Inventory:
    conf = tmp_path / "ceph.conf"
    conf.write_text("[client.rgw.gw]\nrgw_frontends = beast endpoint=127.0.0.1:8080\n")
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY.format(conf=conf, safety=SAFETY))
    return load_inventory(path)


class FakeStore:
    """Objects (bucket -> key -> (bytes, modified)), the versions of the models bucket, and
    unfinished uploads; records every delete and abort."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, tuple[bytes, datetime]]] = {SAFETY: {}}
        self.versions: list[ObjectVersion] = []
        self.uploads: dict[str, list[tuple[str, str, datetime]]] = {}
        self.deleted: list[str] = []
        self.aborted: list[str] = []

    def list_objects(self, bucket: str, prefix: str) -> list[tuple[str, int, datetime]]:
        if bucket not in self.objects:
            raise StoreError(f"no bucket {bucket}", "NoSuchBucket")
        return [(k, len(b), m) for k, (b, m) in sorted(self.objects[bucket].items())
                if k.startswith(prefix)]

    def read_bytes(self, bucket: str, key: str, version_id: str | None = None) -> bytes | None:
        got = self.objects.get(bucket, {}).get(key)
        return None if got is None else got[0]

    def delete(self, bucket: str, key: str, version_id: str | None = None) -> None:
        del self.objects[bucket][key]
        self.deleted.append(f"{bucket}/{key}")

    def list_versions(self, bucket: str, prefix: str) -> list[ObjectVersion]:
        return [v for v in self.versions if v.key.startswith(prefix)]

    def list_uploads(self, bucket: str, prefix: str = "") -> list[tuple[str, str, datetime]]:
        return list(self.uploads.get(bucket, []))

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        self.aborted.append(f"{bucket}/{key}/{upload_id}")


def version(key: str, etag: str, when: datetime, latest: bool) -> ObjectVersion:
    return ObjectVersion(key, f"v-{etag}", latest, False, when, etag, 100)


def add_copy(store: FakeStore, drill: str, found: list[FoundVersion], *,
             when: datetime = OLD) -> None:
    """A safety copy as SafetyCopy.take() leaves it: the copies and found-state.json."""
    root = f"{drill}/"
    for i, f in enumerate(found):
        if f.safety_key:
            store.objects[SAFETY][f.safety_key] = (b"x" * f.size, when)
    doc = {"format": FOUND_STATE_FORMAT, "bucket": "models", "prefix": "m/",
           "versions": [f.__dict__ for f in found]}
    store.objects[SAFETY][root + FOUND_STATE] = (json.dumps(doc).encode(), when)


def found(drill: str, *etags: str) -> list[FoundVersion]:
    return [FoundVersion("m/w.bin", e, 100, False, f"{drill}/{i:06d}/m/w.bin")
            for i, e in enumerate(etags)]


def lease_for(drill: str) -> FoundLease:
    rec = LeaseRecord(Touch.s3("store", "models", "m/"), drill, "artifact-deletion", "purge",
                      "weights", "elsewhere", 1, OLD, OLD, OLD + timedelta(minutes=5), "ev",
                      "runbook", "tok", (SafetyRecord("s3-versions", f"s3://{SAFETY}/{drill}/"),))
    return FoundLease(rec, "tag", MemoryLeaseStore(), LeaseState.ORPHAN, "expired")


def no_rgw(argv: list[str]) -> subprocess.CompletedProcess[str]:
    raise AssertionError(f"radosgw-admin was run: {argv}")


def run_gc(tmp_path: Path, store: FakeStore, leases: list[FoundLease] | None = None,
           **kw: Any) -> Any:
    kw.setdefault("rgw_gc", False)
    kw.setdefault("run", no_rgw)
    return collect(inventory(tmp_path), lambda name: store,  # type: ignore[arg-type,return-value]
                   lambda: leases or [], now=NOW, **kw)


def test_a_redundant_copy_goes_and_a_leased_one_stays(tmp_path: Path) -> None:
    store = FakeStore()
    store.versions = [version("m/w.bin", "b", OLD, True), version("m/w.bin", "a", OLD, False)]
    add_copy(store, "done-1", found("done-1", "b", "a"))
    add_copy(store, "orphan-2", found("orphan-2", "b", "a"))
    store.objects[SAFETY][LEASE_PREFIX + "x.json"] = (b"{}", OLD)
    done_bytes = sum(len(b) for k, (b, _) in store.objects[SAFETY].items()
                     if k.startswith("done-1/"))
    report = run_gc(tmp_path, store, [lease_for("orphan-2")])
    left = set(store.objects[SAFETY])
    assert not any(k.startswith("done-1/") for k in left)
    assert {k for k in left if k.startswith("orphan-2/")} == {
        "orphan-2/000000/m/w.bin", "orphan-2/000001/m/w.bin", "orphan-2/" + FOUND_STATE}
    assert LEASE_PREFIX + "x.json" in left  # leases are never gc's business
    by_root = {i.location: i for i in report.items}
    assert by_root[f"s3://{SAFETY}/done-1/"].action == "removed"
    assert by_root[f"s3://{SAFETY}/orphan-2/"].action == "kept"
    assert "drillbook recover" in by_root[f"s3://{SAFETY}/orphan-2/"].why
    assert report.reclaimed_bytes == done_bytes
    assert report.exit_code == 0


def test_a_copy_that_is_the_only_way_back_is_kept(tmp_path: Path) -> None:
    store = FakeStore()
    # found with versions b (current) over a; the store lost a: only the copy still holds it
    store.versions = [version("m/w.bin", "b", OLD, True)]
    add_copy(store, "failed-3", found("failed-3", "b", "a"))
    report = run_gc(tmp_path, store)
    assert store.deleted == []
    assert report.items[0].action == "kept"
    assert "only way back" in report.items[0].why


def test_newer_versions_written_since_do_not_keep_a_copy(tmp_path: Path) -> None:
    found_ = found("d", "b", "a")
    now = [version("m/w.bin", "c", NOW, True), version("m/w.bin", "b", OLD, False),
           version("m/w.bin", "a", OLD, False)]
    assert still_missing(found_, now) == []
    assert still_missing(found_, now[:2]) == ["m/w.bin"]
    assert still_missing(found_, [now[0], now[2], now[1]]) == ["m/w.bin"]  # order matters


def test_young_copies_and_uploads_are_left_to_the_drill_writing_them(tmp_path: Path) -> None:
    store = FakeStore()
    store.versions = [version("m/w.bin", "b", OLD, True)]
    add_copy(store, "young", found("young", "b"), when=NOW - timedelta(minutes=5))
    store.uploads["models"] = [("m/w.bin", "new-upload", NOW - timedelta(minutes=5)),
                               ("m/w.bin", "stale-upload", OLD)]
    report = run_gc(tmp_path, store)
    assert store.deleted == []
    assert store.aborted == ["models/m/w.bin/stale-upload"]
    assert sorted(i.action for i in report.items) == ["aborted", "kept", "kept"]


def test_an_unfinished_copy_no_lease_names_goes(tmp_path: Path) -> None:
    store = FakeStore()
    store.objects[SAFETY]["died/000000/m/w.bin"] = (b"x" * 10, OLD)
    report = run_gc(tmp_path, store)
    assert store.deleted == [f"{SAFETY}/died/000000/m/w.bin"]
    assert "unfinished" in report.items[0].why


def test_dry_run_changes_nothing_and_says_what_would_go(tmp_path: Path) -> None:
    store = FakeStore()
    store.versions = [version("m/w.bin", "b", OLD, True)]
    add_copy(store, "done", found("done", "b"))
    store.uploads["models"] = [("m/w.bin", "stale", OLD)]
    report = run_gc(tmp_path, store, dry_run=True, rgw_gc=True)
    assert store.deleted == [] and store.aborted == []
    assert {i.action for i in report.items} == {"would remove", "would abort", "would run"}
    assert report.lines()[-1].startswith("gc: would reclaim")


def test_leases_that_cannot_be_listed_keep_every_copy(tmp_path: Path) -> None:
    store = FakeStore()
    store.versions = [version("m/w.bin", "b", OLD, True)]
    add_copy(store, "done", found("done", "b"))

    def unreachable() -> list[FoundLease]:
        raise TargetUnreachable("lease store down")

    report = collect(inventory(tmp_path), lambda name: store,  # type: ignore[arg-type,return-value]
                     unreachable, now=NOW, rgw_gc=False)
    assert store.deleted == []
    assert report.exit_code == 2
    assert "no safety copy was removed" in report.unchecked[0]


@pytest.mark.parametrize("rc", [0, 1])
def test_rgw_garbage_collection_runs_through_the_admin_target(tmp_path: Path, rc: int) -> None:
    calls: list[list[str]] = []

    def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(argv)
        return subprocess.CompletedProcess(argv, rc, "", "" if rc == 0 else "gc failed")

    report = run_gc(tmp_path, FakeStore(), rgw_gc=True, run=run)
    assert calls and calls[0][-3:] == ["gc", "process", "--include-all"]
    assert str(tmp_path / "ceph.conf") in calls[0]
    assert report.items[-1].action == ("ran" if rc == 0 else "failed")
    assert report.exit_code == (0 if rc == 0 else 2)
