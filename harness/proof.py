"""Proving that a restic snapshot holds a known-good copy, without restoring all of it each time.

restic addresses content: a file in a snapshot's tree lists the SHA-256 ids of its chunks, restic
checks every chunk against its id when it reads it, and a snapshot's id is a hash over its tree.
So once a file's bytes have been read and hashed to the manifest's SHA-256, any file in any
snapshot with the same chunk list holds those same bytes, and once a snapshot has been proven
against a manifest it stays proven. :class:`ProofCache` remembers both (a JSON file beside the
evidence); :func:`prove_snapshot` then reads only restic's trees (no file data) plus a sample of
files read in full, so a restore point is still exercised end to end on every drill.

The kind of proof goes into the evidence:

====================  ======================================================================
``full-read``         every file streamed out of the backup and hashed (nothing cached yet)
``content-cache``     every file's chunk list proven before; only trees read this time
``+sample``           suffix: that many files, chosen from the drill id, read in full again
``mixed``             some files proven from the cache, the others read in full now
``snapshot-cache``    this very snapshot was proven against this manifest before
====================  ======================================================================

A file missing from the snapshot, or of the wrong size, is rejected from the tree alone.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.model import Scalar
from harness.restore import hash_from_backup
from harness.targets.protocols import BackupRepo
from harness.targets.restic import FileNode, Snapshot

CACHE_FORMAT = "drillbook-proofs/1"
MAX_TREES = 2000  # tree blobs kept (oldest dropped first)

#: path relative to the snapshot directory -> (sha256, size; -1 when the manifest gives none)
Expected = Mapping[str, tuple[str, int]]


def manifest_digest(expected: Expected) -> str:
    """One id for what a snapshot was proven against."""
    text = "\n".join(f"{rel}\t{sha}\t{size}" for rel, (sha, size) in sorted(expected.items()))
    return hashlib.sha256(text.encode()).hexdigest()


class ProofCache:
    """Content ids and snapshots proven before, in one JSON file shared by every drill that uses
    the same evidence root (updates are serialised with a lock and written atomically)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with (self.path.parent / (self.path.name + ".lock")).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                doc = self._read()
                before = json.dumps(doc, sort_keys=True)
                yield doc
                if json.dumps(doc, sort_keys=True) != before:
                    tmp = self.path.with_suffix(".tmp")
                    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
                    os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {"format": CACHE_FORMAT, "content": {}, "snapshots": {}}
        if not isinstance(doc, dict) or doc.get("format") != CACHE_FORMAT:
            return {"format": CACHE_FORMAT, "content": {}, "snapshots": {}}
        doc.setdefault("content", {})
        doc.setdefault("snapshots", {})
        return doc

    def trees(self) -> dict[str, list[dict[str, Any]]]:
        """restic tree blobs read before (by id: content-addressed, never stale)."""
        trees: dict[str, list[dict[str, Any]]] = self._read().get("trees", {})
        return trees

    def content(self, node: FileNode) -> str | None:
        """The SHA-256 this exact chunk list was proven to hash to, if it ever was."""
        entry = self._read()["content"].get(node.content_id)
        return None if entry is None else str(entry["sha256"])

    def snapshot_proven(self, snapshot_id: str, digest: str) -> bool:
        return digest in self._read()["snapshots"].get(snapshot_id, [])

    def record(self, nodes: Mapping[FileNode, str], snapshot: tuple[str, str] | None,
               trees: Mapping[str, list[dict[str, Any]]] | None = None) -> None:
        """Remember content proven by reading it (node -> sha256), a proven snapshot (its root
        tree id, the manifest digest) and the tree blobs read on the way."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._locked() as doc:
            known = doc.setdefault("trees", {})
            known.update(trees or {})
            for old in list(known)[:max(0, len(known) - MAX_TREES)]:
                del known[old]
            for node, sha in nodes.items():
                if node.content:  # an empty file has no chunks to recognise it by
                    doc["content"][node.content_id] = {"sha256": sha, "size": node.size,
                                                       "proven_utc": now}
            if snapshot is not None:
                proven = doc["snapshots"].setdefault(snapshot[0], [])
                if snapshot[1] not in proven:
                    proven.append(snapshot[1])


@dataclass(frozen=True)
class SnapshotProof:
    snapshot_id: str
    kind: str
    files: int
    hashed: tuple[str, ...] = ()
    cached: tuple[str, ...] = ()
    sampled: tuple[str, ...] = ()
    bad: tuple[str, ...] = ()
    reasons: dict[str, str] = field(default_factory=dict)
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.bad

    def detail(self) -> dict[str, Scalar]:
        """For the journal event: what kind of proof this was and what it cost."""
        return {"proof": self.kind, "files": self.files, "files_read": len(self.hashed),
                "files_from_cache": len(self.cached), "files_sampled": len(self.sampled),
                "bytes_read": self.bytes_read, "proof_s": round(self.seconds, 3)}


def prove_snapshot(repo: BackupRepo, snapshot: Snapshot, base_path: str, expected: Expected,
                   cache: ProofCache | None, *, sample: int = 1, seed: str = "",
                   files: int = 4) -> SnapshotProof:
    """Does ``snapshot`` hold, under ``base_path``, every file of ``expected`` with that hash?

    Reads restic's trees; reads in full only the files whose chunk lists were never proven, plus
    ``sample`` proven ones. Never raises for a mismatch: the proof says which files are bad."""
    started = time.monotonic()
    digest = manifest_digest(expected)
    # the root tree is a Merkle hash of the whole snapshot: a later snapshot of unchanged data
    # has the same one, so it is proven as soon as an earlier one was
    identity = snapshot.tree or snapshot.id
    if cache is not None and cache.snapshot_proven(identity, digest):
        return _proven_before(repo, snapshot, base_path, expected, sample, seed, files, started)
    trees = cache.trees() if cache is not None else {}
    nodes = repo.files(snapshot, base_path, trees)
    bad: dict[str, str] = {}
    cached: list[str] = []
    to_read: list[str] = []
    for rel, (sha, size) in sorted(expected.items()):
        node = nodes.get(rel)
        if node is None:
            bad[rel] = "not in the snapshot"
        elif size >= 0 and node.size != size:
            bad[rel] = f"size {node.size}, expected {size}"
        else:
            known = cache.content(node) if cache is not None else None
            if known is None:
                to_read.append(rel)
            elif known == sha:
                cached.append(rel)
            else:
                bad[rel] = "content proven before to hash differently"
    sampled: list[str] = []
    if not bad:
        sampled = _sample(cached, sample, seed or snapshot.id)
    got: dict[str, tuple[str, int]] = {}
    reading = [*to_read, *sampled]
    if not bad and reading:
        got = hash_from_backup(repo, snapshot.id, base_path, reading, files=files)
        for rel in reading:
            if got[rel][0] != expected[rel][0]:
                bad[rel] = "hashes differently from the manifest"
    if cache is not None and (got or not bad):
        cache.record({nodes[rel]: got[rel][0] for rel in got},
                     (identity, digest) if not bad else None, trees)
    if not to_read:
        kind = "content-cache"
    elif not cached:
        kind = "full-read"
    else:
        kind = "mixed"
    if sampled:
        kind += f"+sample{len(sampled)}"
    return SnapshotProof(snapshot.id, kind, len(expected), tuple(to_read),
                         tuple(c for c in cached if c not in sampled), tuple(sampled),
                         tuple(sorted(bad)), bad, sum(n for _, n in got.values()),
                         time.monotonic() - started)


def _proven_before(repo: BackupRepo, snapshot: Snapshot, base_path: str, expected: Expected,
                   sample: int, seed: str, files: int, started: float) -> SnapshotProof:
    """A snapshot whose root tree was proven against this manifest: only the sample is read."""
    sampled = _sample(sorted(expected), sample, seed or snapshot.id)
    got = hash_from_backup(repo, snapshot.id, base_path, sampled, files=files) if sampled else {}
    bad = {rel: "hashes differently from the manifest" for rel in sampled
           if got[rel][0] != expected[rel][0]}
    kind = "snapshot-cache" + (f"+sample{len(sampled)}" if sampled else "")
    return SnapshotProof(snapshot.id, kind, len(expected), sampled=tuple(sampled),
                         bad=tuple(sorted(bad)), reasons=bad,
                         bytes_read=sum(n for _, n in got.values()),
                         seconds=time.monotonic() - started)


def _sample(rels: list[str], k: int, seed: str) -> list[str]:
    """``k`` of ``rels``, chosen from ``seed`` (the drill id: recorded, so reproducible)."""
    if k <= 0 or not rels:
        return []
    return sorted(random.Random(seed).sample(sorted(rels), min(k, len(rels))))
