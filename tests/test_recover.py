"""Recovery logic without a lab: the safety copy's non-destructive restore on an in-memory
versioned store, its found-state.json round trip, and finding orphans among local journals."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.errors import GuardRefused, StepFailed
from harness.guards import SafetyCopy
from harness.lease import MemoryResolver
from harness.recover import find_orphans
from harness.targets.s3 import ObjectVersion


@dataclass
class _Version:
    vid: str
    data: bytes | None  # None: a delete marker
    when: datetime


class VersionedStore:
    """Just enough of S3Store for SafetyCopy: versioned buckets in memory."""

    def __init__(self) -> None:
        self.buckets: dict[str, dict[str, list[_Version]]] = {}  # newest first per key
        self.clock = datetime(2026, 1, 1, tzinfo=UTC)
        self.n = 0
        self.deleted: list[str] = []

    class _Target:
        name = "fake"

    target = _Target()

    def _tick(self) -> tuple[str, datetime]:
        self.n += 1
        self.clock += timedelta(seconds=1)
        return f"v{self.n}", self.clock

    def put(self, bucket: str, key: str, data: bytes | None) -> None:
        vid, when = self._tick()
        self.buckets.setdefault(bucket, {}).setdefault(key, []).insert(0, _Version(vid, data,
                                                                                  when))

    def ensure_bucket(self, bucket: str, versioned: bool) -> None:
        self.buckets.setdefault(bucket, {})

    def list_versions(self, bucket: str, prefix: str) -> list[ObjectVersion]:
        out = []
        for key in sorted(self.buckets.get(bucket, {})):
            if key.startswith(prefix):
                for i, v in enumerate(self.buckets[bucket][key]):
                    out.append(ObjectVersion(
                        key, v.vid, i == 0, v.data is None, v.when,
                        "" if v.data is None else hashlib.md5(v.data).hexdigest(),
                        0 if v.data is None else len(v.data)))
        return out

    def list_keys(self, bucket: str, prefix: str) -> list[str]:
        return [k for k, vs in self.buckets.get(bucket, {}).items()
                if k.startswith(prefix) and vs and vs[0].data is not None]

    def copy_version(self, src: str, key: str, vid: str, dest: str, dest_key: str) -> None:
        [v] = [v for v in self.buckets[src][key] if v.vid == vid]
        self.put(dest, dest_key, v.data)

    def put_bytes(self, bucket: str, key: str, data: bytes) -> None:
        self.put(bucket, key, data)

    def read_bytes(self, bucket: str, key: str) -> bytes | None:
        vs = self.buckets.get(bucket, {}).get(key)
        return vs[0].data if vs else None

    def open(self, bucket: str, key: str) -> io.BytesIO:
        data = self.read_bytes(bucket, key)
        assert data is not None
        return io.BytesIO(data)

    def upload_stream(self, bucket: str, key: str, stream: Any) -> tuple[str, int]:
        data = stream.read()
        self.put(bucket, key, data)
        return hashlib.sha256(data).hexdigest(), len(data)

    def delete(self, bucket: str, key: str, version_id: str | None = None) -> None:
        if version_id is None:
            self.put(bucket, key, None)
            return
        self.deleted.append(f"{key}@{version_id}")
        vs = self.buckets[bucket][key]
        vs[:] = [v for v in vs if v.vid != version_id]


def taken(store: VersionedStore) -> SafetyCopy:
    copy = SafetyCopy(store, "models", "m/", "safety", "drill-1")  # type: ignore[arg-type]
    copy.take()
    return copy


def fingerprint(store: VersionedStore) -> list[tuple[str, str, int, bool]]:
    return [(v.key, v.etag, v.size, v.is_delete_marker)
            for v in store.list_versions("models", "m/")]


def test_restore_keeps_what_matches_and_removes_only_what_differs() -> None:
    s = VersionedStore()
    for key, data in (("m/a", b"a1"), ("m/a", b"a2"), ("m/b", b"b1"), ("m/b", b"b2")):
        s.put("models", key, data)
    found = fingerprint(s)
    copy = taken(s)
    a_versions = {v.version_id for v in s.list_versions("models", "m/a")}
    s.put("models", "m/a", b"stray")  # someone wrote over a
    s.delete("models", "m/b", s.list_versions("models", "m/b")[0].version_id)  # b2 purged
    s.put("models", "m/new", b"x")  # a key that was not there
    report = SafetyCopy.load(s, "safety", "drill-1/").restore()  # type: ignore[arg-type]
    assert fingerprint(s) == found
    assert a_versions <= {v.version_id for v in s.list_versions("models", "m/a")}, \
        "the versions of a that were as found are kept, not deleted and replayed"
    assert report.kept == 3 and len(report.replayed) == 1 and len(report.removed) == 2
    assert not any(d.split("@")[1] in a_versions for d in s.deleted)
    assert copy.matches()


def test_restore_after_a_purge_replays_every_version_in_order() -> None:
    s = VersionedStore()
    for data in (b"1", b"2", b"3"):
        s.put("models", "m/w", data)
    s.put("models", "m/gone", b"g")
    s.delete("models", "m/gone")  # a delete marker on top, as found
    found = fingerprint(s)
    taken(s)
    for v in s.list_versions("models", "m/"):
        s.delete("models", v.key, v.version_id)
    assert fingerprint(s) == []
    SafetyCopy.load(s, "safety", "drill-1/").restore()  # type: ignore[arg-type]
    assert fingerprint(s) == found


def test_restore_names_what_still_differs() -> None:
    s = VersionedStore()
    s.put("models", "m/w", b"1")
    copy = taken(s)
    s.put("models", "m/w", b"2")
    # the safety copy itself was damaged: replay puts the wrong bytes back
    [safety_key] = [k for k in s.buckets["safety"] if k.endswith("m/w")]
    s.put("safety", safety_key, b"corrupt")
    s.delete("models", "m/w", s.list_versions("models", "m/w")[-1].version_id)
    with pytest.raises(StepFailed, match=r"m/w: found \[.*\], now \["):
        copy.restore()


def test_found_state_is_required_and_the_old_list_format_still_loads() -> None:
    s = VersionedStore()
    with pytest.raises(GuardRefused, match="found-state.json"):
        SafetyCopy.load(s, "safety", "nothing/")  # type: ignore[arg-type]
    s.put("safety", "old/found-state.json", json.dumps(
        [{"key": "m/w", "etag": "e", "size": 1, "is_delete_marker": False,
          "safety_key": "old/000000/m/w"}]).encode())
    copy = SafetyCopy.load(s, "safety", "old/", bucket="models",  # type: ignore[arg-type]
                           prefix="m/")
    assert copy.bucket == "models" and [f.key for f in copy.found] == ["m/w"]


def write_journal(folder: Path, *records: dict[str, Any], age_s: float = 0) -> None:
    folder.mkdir(parents=True)
    path = folder / "journal.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    if age_s:
        t = time.time() - age_s
        os.utime(path, (t, t))


def test_local_journals_without_a_verdict_are_orphans(tmp_path: Path) -> None:
    head = {"type": "drill", "utc": "2026-01-01T00:00:00+00:00", "scenario": "artifact-deletion",
            "variant": "purge", "asset": "w"}
    inject = {"type": "event", "event": "phase.inject", "phase": "inject"}
    copy = {"type": "event", "event": "safety.copy.taken", "phase": "baseline",
            "detail": {"location": "s3://safety/d1/"}}
    write_journal(tmp_path / "d1", head, copy, inject, age_s=120)
    write_journal(tmp_path / "d2", head, inject, {"type": "verdict", "verdict": "PASS"},
                  age_s=120)
    write_journal(tmp_path / "d3", head, inject)  # still being written: not yet an orphan
    (tmp_path / "d4").mkdir()
    (tmp_path / "d4" / "journal.jsonl").write_text('{"type": "drill", "scen')  # cut by a kill
    os.utime(tmp_path / "d4" / "journal.jsonl", (time.time() - 120, time.time() - 120))
    found = find_orphans(MemoryResolver(), tmp_path, quiet_s=60)
    assert [o.drill_id for o in found] == ["d1", "d4"]
    d1 = found[0]
    assert d1.phase == "inject" and d1.injected and d1.scenario == "artifact-deletion"
    assert [(s.kind, s.location) for s in d1.safety] == [("s3-versions", "s3://safety/d1/")]
    assert not found[1].injected
    assert [o.drill_id for o in find_orphans(MemoryResolver(), tmp_path, drill="d4",
                                             quiet_s=60)] == ["d4"]


def test_recover_closes_a_journal_it_cannot_build_evidence_for(tmp_path: Path) -> None:
    from harness.inventory import load_inventory
    from harness.recover import recover_all
    (tmp_path / "inv.yaml").write_text(
        "version: 1\nsite: unit\ntargets:\n  store: {kind: s3, endpoint: 'http://127.0.0.1:9', "
        "access_key: a, secret_key: b, drill_safe: true}\nassets:\n  - {id: w, tier: 1, kind: "
        "model-weights, store: store, bucket: b, prefix: p/}\nobjectives:\n  tiers: {1: "
        "{rto_s: 60, rpo_s: 3600}}\n")
    inv = load_inventory(tmp_path / "inv.yaml")
    root = tmp_path / "ev"
    write_journal(root / "d1", {"type": "drill", "scenario": "gone", "asset": "unknown"},
                  {"type": "event", "event": "phase.baseline"}, age_s=120)
    lines: list[str] = []
    [out] = recover_all(inv, None, MemoryResolver(), root, quiet_s=60, progress=lines.append)
    assert out.verified and out.exit_code == 0, out.to_json()
    assert "closed" in out.closed and any("died at baseline" in x for x in lines)
    assert '"type": "verdict"' in (root / "d1" / "journal.jsonl").read_text()
    assert recover_all(inv, None, MemoryResolver(), root, quiet_s=60) == [], \
        "a closed journal is not an orphan any more"
