"""The restore pipeline: files out of a restic snapshot and into an object store, stages overlapped.

The default, ``method="restore"``::

    restic restore --include (files 0, 2, 4 ...)  ─┐  ``groups`` restic processes at once, each
    restic restore --include (files 1, 3, 5 ...)  ─┤  with restic's own parallel pack downloads,
                                                   │  into a scratch directory
          group done: its files, one after another ▼  (the other groups still restoring)
    read a 16 MiB part ──► sha256.update ──► upload_part  (one pool of ``upload_threads``
          ▲                                      │          shared by every file)
          └──────── PartBudget (``parts``) ◄─────┘  a part's buffer is reused once sent

A group's files are uploaded as soon as its restic has finished, while the other groups restore,
and each file leaves scratch once sent (scratch never holds more than the files not yet sent).
Every byte is hashed once, as it is read, and that hash is the runbook's verification (no second
trip to the store for bytes the harness already saw). Memory is ``parts`` x 16 MiB whatever the
artifact's size; the buffers are reused (see :class:`~harness.targets.s3.PartBudget`).

``method="dump"`` needs no scratch disk: one ``restic dump FILE`` per file, ``files`` at a time,
each piped (1 MiB pipe) into the same hashed uploads. It is slower, because ``restic dump`` reads
a file blob by blob where ``restore`` fetches whole packs in parallel: on the lab at 256 MiB under
load, two restore groups took 9.4-9.9 s, one group 10.1-12.1 s, four groups 10.1-12.6 s, and four
parallel dumps 13.6-13.8 s (the same run, three rounds).

Tuning comes from :class:`RestoreTuning` (``DRILLBOOK_RESTORE_*`` environment variables).
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from harness.errors import TargetUnreachable, UsageError
from harness.integrity import Readable, sha256_stream
from harness.targets.protocols import BackupRepo, ObjectStore
from harness.targets.s3 import MULTIPART_THRESHOLD, PART_SIZE, PartBudget

METHODS = ("dump", "restore")
#: reads of a stream that is only hashed: small, so that several at once stay out of glibc's
#: per-thread heaps (8 MiB blocks freed and made again there stay resident)
HASH_READ = 1024 * 1024
K = TypeVar("K")
V = TypeVar("V")
R = TypeVar("R")
#: opens one file's stream: restic's dump pipe, or a file restored to scratch disk
Opener = Callable[[], AbstractContextManager[Readable]]


@dataclass(frozen=True)
class RestoreTuning:
    """How wide the pipeline runs. Memory is bounded by ``parts`` x ``part_size``."""

    files: int = 4  # dump: files streaming at once (one restic process each)
    upload_threads: int = 5  # parts on the wire at once, all files together
    parts: int = 6  # part buffers alive at once, all files together (one more than on the wire)
    part_size: int = PART_SIZE
    #: measured at 256 MiB, 1 GiB and 2 GiB on the lab (bench/restore.py and the README): two
    #: `restic restore` groups beat one (no overlap) and four (restic's own start-up and index
    #: load four times over), and all of them beat per-file dumps (restic reads blob by blob)
    method: str = "restore"
    groups: int = 2  # restore: `restic restore` processes at once, each over its share of files

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"restore method {self.method!r} is not one of {', '.join(METHODS)}")
        if min(self.files, self.upload_threads, self.parts, self.groups) < 1:
            raise UsageError("restore concurrency settings must be at least 1")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RestoreTuning:
        """``DRILLBOOK_RESTORE_FILES``, ``_UPLOAD_THREADS``, ``_PARTS``, ``_GROUPS``,
        ``_METHOD``."""
        env = os.environ if env is None else env
        base = cls()

        def number(name: str, default: int) -> int:
            raw = env.get(f"DRILLBOOK_RESTORE_{name}")
            if raw is None:
                return default
            try:
                return int(raw)
            except ValueError as exc:
                raise UsageError(f"DRILLBOOK_RESTORE_{name}={raw!r} is not a whole number") from exc

        return cls(files=number("FILES", base.files),
                   upload_threads=number("UPLOAD_THREADS", base.upload_threads),
                   parts=number("PARTS", base.parts),
                   groups=number("GROUPS", base.groups),
                   method=env.get("DRILLBOOK_RESTORE_METHOD", base.method))


@dataclass(frozen=True)
class Transfer:
    """One file restored: what was sent, hashed on the way."""

    key: str
    sha256: str
    size: int
    seconds: float


@dataclass(frozen=True)
class RestoreReport:
    transfers: dict[str, Transfer]
    method: str
    seconds: float
    restic_seconds: float  # restore method: the `restic restore` stage alone; dump: 0

    @property
    def bytes(self) -> int:
        return sum(t.size for t in self.transfers.values())

    def hashes(self) -> dict[str, tuple[str | None, int]]:
        return {k: (t.sha256, t.size) for k, t in self.transfers.items()}


def restore_to_store(repo: BackupRepo, snapshot_id: str, base_path: str,
                     files: Mapping[str, str], store: ObjectStore, bucket: str, *,
                     tuning: RestoreTuning | None = None,
                     scratch: Path | None = None) -> RestoreReport:
    """Restore ``files`` (path relative to ``base_path`` in the snapshot -> store key) into
    ``bucket``; every object is hashed as it is sent. A file the snapshot lacks raises
    TargetUnreachable (restic's error). Returns what was sent with its SHA-256."""
    tuning = tuning or RestoreTuning.from_env()
    started = time.monotonic()
    budget = PartBudget(tuning.parts)
    with concurrent.futures.ThreadPoolExecutor(tuning.upload_threads,
                                               thread_name_prefix="restore-part") as parts:

        def upload(key: str, opener: Opener) -> Transfer:
            t = time.monotonic()
            with opener() as stream:
                sha, size = store.upload_hashed(
                    bucket, key, stream, parts=parts, budget=budget, part_size=tuning.part_size,
                    threshold=min(MULTIPART_THRESHOLD, tuning.part_size))
            return Transfer(key, sha, size, time.monotonic() - t)

        if tuning.method == "dump":
            base = "/" + base_path.strip("/")
            jobs = {key: _dump_opener(repo, snapshot_id, f"{base}/{rel}")
                    for rel, key in files.items()}
            transfers = _run_all(jobs, upload, tuning.files)
            return RestoreReport(transfers, "dump", time.monotonic() - started, 0.0)
        with _scratch_dir(scratch) as tmp:
            transfers, restic_s = _restore_in_groups(repo, snapshot_id, base_path, files, tmp,
                                                     upload, tuning.groups)
        return RestoreReport(transfers, "restore", time.monotonic() - started, restic_s)


def _restore_in_groups(repo: BackupRepo, snapshot_id: str, base_path: str,
                       files: Mapping[str, str], tmp: Path,
                       upload: Callable[[str, Opener], Transfer], groups: int
                       ) -> tuple[dict[str, Transfer], float]:
    """``groups`` ``restic restore`` processes at once, each over every ``groups``-th file (the
    caller's order: largest first, so the big files land in different groups); a group's files
    are uploaded as soon as its restic has finished, while the other groups still restore, and
    each is removed from scratch once sent. Returns the transfers and the longest restic run."""
    rels = list(files)
    split = [rels[i::groups] for i in range(min(groups, len(rels)))]
    restic_s: list[float] = []

    def one(n: int, group: list[str]) -> dict[str, Transfer]:
        t = time.monotonic()
        root = repo.restore(snapshot_id, base_path, tmp / f"g{n}", includes=group)
        restic_s.append(time.monotonic() - t)
        out: dict[str, Transfer] = {}
        for rel in group:
            if not (root / rel).is_file():
                # restic restore exits 0 when an include matches nothing
                raise TargetUnreachable(f"restic restore {snapshot_id} {base_path}/{rel}: "
                                        f"not found in the snapshot")
            out[files[rel]] = upload(files[rel], _file_opener(root / rel))
            (root / rel).unlink(missing_ok=True)  # scratch holds only what is not yet sent
        return out

    done = _run_all(dict(enumerate(split)), one, len(split))
    transfers = {key: t for group in done.values() for key, t in group.items()}
    return {files[rel]: transfers[files[rel]] for rel in rels}, max(restic_s, default=0.0)


def hash_from_backup(repo: BackupRepo, snapshot_id: str, base_path: str, rels: list[str], *,
                     files: int = 4) -> dict[str, tuple[str, int]]:
    """(sha256, size) of files in a snapshot, ``files`` restic streams at a time, nothing kept."""
    base = "/" + base_path.strip("/")

    def one(rel: str, opener: Opener) -> tuple[str, int]:
        with opener() as stream:
            return sha256_stream(stream, HASH_READ)

    return _run_all({rel: _dump_opener(repo, snapshot_id, f"{base}/{rel}") for rel in rels},
                    one, files)


# -- helpers ----------------------------------------------------------------------------------


def _dump_opener(repo: BackupRepo, snapshot_id: str, path: str) -> Opener:
    return lambda: repo.dump(snapshot_id, path)


def _file_opener(path: Path) -> Opener:
    return lambda: path.open("rb")


def _run_all(jobs: Mapping[K, V], fn: Callable[[K, V], R], width: int) -> dict[K, R]:
    """Run ``fn`` over every job, ``width`` at a time; the first error cancels what has not
    started and is raised once the running ones have stopped."""
    out: dict[K, R] = {}
    with concurrent.futures.ThreadPoolExecutor(max(1, min(width, len(jobs) or 1)),
                                               thread_name_prefix="restore-file") as pool:
        futures = {pool.submit(fn, k, job): k for k, job in jobs.items()}
        try:
            for f in concurrent.futures.as_completed(futures):
                out[futures[f]] = f.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise
    return {k: out[k] for k in jobs}


@contextmanager
def _scratch_dir(parent: Path | None) -> Iterator[Path]:
    """A private scratch directory (under ``parent`` when given), removed afterwards."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="drillbook-restore-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
