"""An in-memory restic repository.

:class:`~harness.targets.protocols.BackupRepo` is the part of
:class:`harness.targets.restic.ResticRepo` that scenarios, the restore pipeline
(harness/restore.py) and snapshot proofs (harness/proof.py) call. :class:`FakeRepo` holds
snapshots as files in memory and answers like restic: snapshots oldest first, content ids (one
chunk per file here) so identical bytes share them, a root tree id that is the same for the same
content, and :class:`~harness.errors.TargetUnreachable` with restic's own wording when a path is
not in a snapshot or a chunk fails its check. :meth:`FakeRepo.rot` damages a file in a snapshot
after the fact (a corrupt pack file).

A repository given the store it lives in (``store``, an S3 repository's bucket and prefix) is
also a backup target: :meth:`FakeRepo.backup_files` writes each snapshot's data into that bucket
as the account that backs up (refused as the store refuses that account, and counted against
the bucket's quota), and ``run("forget", "--keep-last", N, "--prune")`` drops the older snapshots
of each path and deletes their data there, as restic's prune deletes unused pack files.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from harness.errors import Inconclusive, TargetUnreachable
from harness.inventory import ResticTarget
from harness.model import utc_now
from harness.targets.protocols import Trees
from harness.targets.restic import FileNode, Snapshot

if TYPE_CHECKING:
    from harness.fakes.store import FakeStore


class FakeRepo:
    """A restic repository in memory. ``now`` dates snapshots made without an explicit time."""

    def __init__(self, target: ResticTarget, *, now: Callable[[], datetime] = utc_now,
                 store: FakeStore | None = None) -> None:
        self.target = target
        self.now = now
        #: the store the repository lives in, as restic's own credentials see it (or None)
        self.store = store
        self._snaps: list[tuple[Snapshot, dict[str, bytes]]] = []
        #: snapshot id -> path -> (size, content ids) as backed up: rot() changes bytes only
        self._recorded: dict[str, dict[str, tuple[int, tuple[str, ...]]]] = {}
        #: snapshot id -> the object holding its data in the repository's bucket
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- set-up for tests ------------------------------------------------------------------------

    def add_snapshot(self, path: str, files: Mapping[str, bytes], *,
                     time: datetime | None = None, tags: tuple[str, ...] = ()) -> Snapshot:
        """A snapshot of directory ``path`` holding ``files`` (relative path -> bytes)."""
        base = "/" + path.strip("/")
        content = {f"{base}/{rel.lstrip('/')}": bytes(data) for rel, data in files.items()}
        listing = "\n".join(f"{p}\t{hashlib.sha256(d).hexdigest()}"
                            for p, d in sorted(content.items()))
        tree = hashlib.sha256(listing.encode()).hexdigest()
        when = time or self.now()
        with self._lock:
            sid = hashlib.sha256(f"{tree}{when.isoformat()}{len(self._snaps)}".encode()).hexdigest()
            snap = Snapshot(sid, sid[:8], when, (base,), tags, tree)
            self._snaps.append((snap, content))
            self._recorded[sid] = {p: (len(d), self._chunks(d)) for p, d in content.items()}
        return snap

    def backup_files(self, path: str, files: Mapping[str, bytes], *,
                     writer: FakeStore) -> Snapshot:
        """A new snapshot of ``files`` as directory ``path``, made by a backup that writes its
        data into the repository's bucket through ``writer`` (the backing-up account's client:
        a refused key or a full bucket fails the backup, and no snapshot is made)."""
        bucket, prefix = self._location()
        with self._lock:
            key = f"{prefix}data/{len(self._data) + 1:06d}"
        writer.put_bytes(bucket, key, b"".join(files.values()))
        snap = self.add_snapshot(path, files)
        with self._lock:
            self._data[snap.id] = key
        return snap

    def _location(self) -> tuple[str, str]:
        """(bucket, prefix) of an S3 repository ``s3:http://host/bucket/prefix``."""
        repo = self.target.repository
        bucket, _, prefix = repo.split("://", 1)[-1].split("/", 1)[-1].partition("/")
        return bucket, prefix.rstrip("/") + "/"

    def rot(self, snapshot_id: str, rel_path: str) -> None:
        """Damage the stored chunk of one file, as a corrupt pack file would: every snapshot
        that holds the same content (restic stores it once) is damaged with it. Trees still
        list the old content ids; reading the file fails restic's chunk check."""
        with self._lock:
            snap = next((s for s, _ in self._snaps if s.id.startswith(snapshot_id)), None)
            if snap is None:
                raise KeyError(f"no snapshot {snapshot_id}")
            path = f"{snap.paths[0]}/{rel_path.lstrip('/')}"
            chunks = self._recorded[snap.id][path][1]
            for s, content in self._snaps:
                for p, (_, ids) in self._recorded[s.id].items():
                    if ids == chunks:
                        data = bytearray(content[p])
                        data[len(data) // 2] ^= 0xFF
                        content[p] = bytes(data)

    # -- helpers ---------------------------------------------------------------------------------

    def _get(self, snapshot_id: str) -> tuple[Snapshot, dict[str, bytes]]:
        with self._lock:
            for snap, content in self._snaps:
                if snap.id.startswith(snapshot_id):
                    return snap, content
        raise TargetUnreachable(f"restic dump on {self.target.name} failed (exit 1): Fatal: "
                                f"no matching ID found for prefix {snapshot_id!r}")

    @staticmethod
    def _chunks(data: bytes) -> tuple[str, ...]:
        return (hashlib.sha256(data).hexdigest(),) if data else ()

    # -- the ResticRepo methods ------------------------------------------------------------------

    def run(self, *args: str, timeout_s: float | None = None) -> str:
        """The restic commands a drill runs itself: ``unlock`` (no stale lock is ever left
        here) and ``forget --keep-last N [--prune]``; any other is not faked."""
        if args[:1] == ("unlock",):
            return ""
        if args[:1] == ("forget",) and "--keep-last" in args:
            self._forget(int(args[args.index("--keep-last") + 1]), prune="--prune" in args)
            return ""
        raise Inconclusive(f"the fake restic repository {self.target.name} does not do "
                           f"{' '.join(args)}")

    def _forget(self, keep: int, *, prune: bool) -> None:
        """Keep the newest ``keep`` snapshots of each set of paths (restic groups by host and
        paths; these have one host); with prune, delete the data only forgotten ones held."""
        with self._lock:
            by_paths: dict[tuple[str, ...], list[Snapshot]] = {}
            for snap, _ in sorted(self._snaps, key=lambda sc: sc[0].time):
                by_paths.setdefault(snap.paths, []).append(snap)
            gone = [s.id for snaps in by_paths.values() for s in snaps[:max(len(snaps) - keep, 0)]]
            self._snaps = [(s, c) for s, c in self._snaps if s.id not in gone]
            data = [self._data.pop(sid) for sid in gone if sid in self._data]
        if prune and data:
            if self.store is None:
                raise Inconclusive(f"the fake restic repository {self.target.name} was given "
                                   f"no store to prune its data from")
            bucket, _ = self._location()
            for key in data:
                self.store.delete(bucket, key)

    def snapshots(self, path: str | None = None) -> list[Snapshot]:
        with self._lock:
            snaps = [s for s, _ in self._snaps
                     if path is None or "/" + path.strip("/") in s.paths]
        return sorted(snaps, key=lambda s: s.time)

    def ls(self, snapshot_id: str, path: str) -> list[str]:
        base = "/" + path.strip("/") + "/"
        _, content = self._get(snapshot_id)
        return sorted(p for p in content if p.startswith(base))

    @contextmanager
    def dump(self, snapshot_id: str, path: str) -> Iterator[IO[bytes]]:
        _, content = self._get(snapshot_id)
        key = "/" + path.strip("/")
        if key in content:
            if self._chunks(content[key]) != self._recorded[self._get(snapshot_id)[0].id][key][1]:
                # restic checks every chunk against its id as it reads it
                raise TargetUnreachable(f"restic dump {snapshot_id} {path} on {self.target.name} "
                                        f"failed (exit 1): Fatal: ciphertext verification "
                                        f"failed for a blob of {key}")
            yield io.BytesIO(content[key])
            return
        if not any(p.startswith(key + "/") for p in content):
            raise TargetUnreachable(f"restic dump {snapshot_id} {path} on {self.target.name} "
                                    f"failed (exit 1): Fatal: cannot dump file: path {key!r} "
                                    f"not found in snapshot")
        # a directory: restic streams it as a tar archive
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for p, data in sorted(content.items()):
                if p.startswith(key + "/"):
                    info = tarfile.TarInfo(p.lstrip("/"))
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        buf.seek(0)
        yield buf

    @contextmanager
    def dump_tree(self, snapshot_id: str, path: str) -> Iterator[Iterator[tuple[str, IO[bytes]]]]:
        base = "/" + path.strip("/") + "/"
        _, content = self._get(snapshot_id)
        files = sorted((p[len(base):], d) for p, d in content.items() if p.startswith(base))
        yield iter([(rel, io.BytesIO(d)) for rel, d in files])

    def files(self, snapshot: Snapshot, path: str,
              trees: Trees | None = None) -> dict[str, FileNode]:
        """Sizes and content ids as recorded at backup time (a rotted file keeps its old ids,
        as a damaged pack does not change restic's tree)."""
        base = "/" + path.strip("/") + "/"
        _, content = self._get(snapshot.id)
        with self._lock:
            recorded = self._recorded.get(snapshot.id, {})
        out = {}
        for p, data in content.items():
            if p.startswith(base):
                size, chunks = recorded.get(p, (len(data), self._chunks(data)))
                out[p[len(base):]] = FileNode(p[len(base):], size, chunks)
        return out

    def restore(self, snapshot_id: str, path: str, target: Path,
                includes: list[str] | None = None) -> Path:
        base = "/" + path.strip("/")
        _, content = self._get(snapshot_id)
        wanted = [f"{base}/{rel.lstrip('/')}".rstrip("/") for rel in includes or [""]]
        for p, data in content.items():
            if any(p == w or p.startswith(w + "/") for w in wanted):
                dest = target / p.lstrip("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(data)
        return target / base.lstrip("/")
