"""Guards that keep a drill from becoming a real disaster.

- :func:`require_drill_safe`: destructive faults only on targets the inventory marks drill-safe.
- :class:`SafetyCopy`: before a destructive fault, every version under the asset's prefix is
  copied (server-side) to a safety bucket, with the found state recorded; revert compares the
  store with that state and puts it back if the drill left it different.
- :class:`DrillLock`: one drill per asset at a time on this machine.
"""

from __future__ import annotations

import fcntl
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from harness.errors import GuardRefused
from harness.inventory import Inventory
from harness.targets.s3 import ObjectVersion, S3Store


def require_drill_safe(inventory: Inventory, target_name: str) -> None:
    target = inventory.targets[target_name]
    if not target.drill_safe:
        raise GuardRefused(
            f"target {target_name!r} is not marked drill_safe in {inventory.path}; destructive "
            f"faults run only against targets declared safe for drills (set drill_safe: true "
            f"there if this really is a drill target)")


@dataclass(frozen=True)
class FoundVersion:
    key: str
    etag: str
    size: int
    is_delete_marker: bool
    safety_key: str | None


class SafetyCopy:
    """A server-side copy of every version under a prefix, and the order they were found in."""

    def __init__(self, store: S3Store, bucket: str, prefix: str, safety_bucket: str,
                 drill_id: str) -> None:
        self.store = store
        self.bucket = bucket
        self.prefix = prefix
        self.safety_bucket = safety_bucket
        self.root = f"{drill_id}/"
        self.found: list[FoundVersion] = []

    def take(self) -> int:
        """Copy every version; returns how many. Raises if anything could not be copied."""
        self.store.ensure_bucket(self.safety_bucket, versioned=False)
        found: list[FoundVersion] = []
        for i, v in enumerate(self.store.list_versions(self.bucket, self.prefix)):
            if v.is_delete_marker:
                found.append(FoundVersion(v.key, "", 0, True, None))
                continue
            dest = f"{self.root}{i:06d}/{v.key}"
            self.store.copy_version(self.bucket, v.key, v.version_id, self.safety_bucket, dest)
            found.append(FoundVersion(v.key, v.etag, v.size, False, dest))
        self.found = found
        self.store.put_bytes(self.safety_bucket, self.root + "found-state.json",
                             json.dumps([f.__dict__ for f in found]).encode())
        return sum(1 for f in found if not f.is_delete_marker)

    def matches(self) -> bool:
        """True when every key has the same versions (content, order, markers) as when found."""
        return _fingerprint(self.store.list_versions(self.bucket, self.prefix)) == [
            (f.key, f.etag, f.size, f.is_delete_marker) for f in self.found]

    def restore(self) -> None:
        """Put the prefix back as found: remove everything under it, then replay the versions
        oldest first, so history holds the same content in the same order (new version ids)."""
        for v in self.store.list_versions(self.bucket, self.prefix):
            self.store.delete(self.bucket, v.key, v.version_id)
        for f in reversed(self.found):
            if f.is_delete_marker:
                self.store.delete(self.bucket, f.key)
            else:
                assert f.safety_key is not None
                body = self.store.open(self.safety_bucket, f.safety_key)
                self.store.upload_stream(self.bucket, f.key, body)

    def discard(self) -> None:
        for key in self.store.list_keys(self.safety_bucket, self.root):
            self.store.delete(self.safety_bucket, key)


def _fingerprint(versions: list[ObjectVersion]) -> list[tuple[str, str, int, bool]]:
    return [(v.key, v.etag, v.size, v.is_delete_marker) for v in versions]


class DrillLock:
    """An exclusive lock per asset, so two drills never break the same thing at once."""

    def __init__(self, lock_dir: Path, asset_id: str) -> None:
        lock_dir.mkdir(parents=True, exist_ok=True)
        self.path = lock_dir / f"{asset_id}.lock"
        self._fh: IO[str] | None = None

    def acquire(self, drill_id: str) -> None:
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.seek(0)
            holder = fh.read().strip() or "another drill"
            fh.close()
            raise GuardRefused(f"asset is locked by {holder} ({self.path})") from exc
        fh.seek(0)
        fh.truncate()
        fh.write(drill_id)
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

