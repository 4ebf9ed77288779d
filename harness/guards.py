"""Guards that keep a drill from becoming a real disaster.

- :func:`require_drill_safe`: destructive faults only on targets the inventory marks drill-safe.
- :class:`SafetyCopy`: before a destructive fault, every version under the asset's prefix is
  copied (server-side) to a safety bucket, with the found state recorded; revert compares the
  store with that state and puts it back if the drill left it different.
  It is recorded in the drill's leases (harness/lease.py) before it is taken, and
  ``drillbook recover`` loads it back (:meth:`SafetyCopy.load`) when the drill died.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TypeVar

from harness import lease
from harness.errors import GuardRefused, StepFailed
from harness.inventory import Inventory
from harness.targets.protocols import ObjectStore
from harness.targets.s3 import ObjectVersion

FOUND_STATE = "found-state.json"
FOUND_STATE_FORMAT = "drillbook-found-state/1"


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

    @property
    def fingerprint(self) -> tuple[str, int, bool]:
        return self.etag, self.size, self.is_delete_marker


V = TypeVar("V", FoundVersion, ObjectVersion)


class SafetyCopy:
    """A server-side copy of every version under a prefix, and the order they were found in.

    ``found-state.json`` beside the copies records the bucket, the prefix and every version
    (newest first per key), so :meth:`load` can put the prefix back from another process
    (``drillbook recover``) after the drill that took it died."""

    def __init__(self, store: ObjectStore, bucket: str, prefix: str, safety_bucket: str,
                 drill_id: str) -> None:
        self.store = store
        self.bucket = bucket
        self.prefix = prefix
        self.safety_bucket = safety_bucket
        self.drill_id = drill_id
        self.root = f"{drill_id}/"
        self.found: list[FoundVersion] = []

    @property
    def location(self) -> str:
        return f"s3://{self.safety_bucket}/{self.root}"

    def take(self) -> int:
        """Copy every version; returns how many. Raises if anything could not be copied.
        The copy is recorded in the drill's leases before it is taken."""
        lease.record_safety_copy(self.drill_id, "s3-versions", self.location,
                                 target=self.store.target.name, bucket=self.bucket,
                                 prefix=self.prefix, safety_bucket=self.safety_bucket,
                                 root=self.root)
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
        doc = {"format": FOUND_STATE_FORMAT, "bucket": self.bucket, "prefix": self.prefix,
               "versions": [f.__dict__ for f in found]}
        self.store.put_bytes(self.safety_bucket, self.root + FOUND_STATE, json.dumps(doc).encode())
        return sum(1 for f in found if not f.is_delete_marker)

    @classmethod
    def load(cls, store: ObjectStore, safety_bucket: str, root: str, *, bucket: str | None = None,
             prefix: str | None = None) -> SafetyCopy:
        """The safety copy a drill took, from its found-state.json (older copies wrote a bare
        list of versions: give bucket and prefix then). Raises GuardRefused when it is absent."""
        raw = store.read_bytes(safety_bucket, root + FOUND_STATE)
        if raw is None:
            raise GuardRefused(f"no {FOUND_STATE} at s3://{safety_bucket}/{root}: the safety copy "
                               f"was never completed or has been discarded")
        doc = json.loads(raw)
        if isinstance(doc, list):
            doc = {"bucket": bucket, "prefix": prefix, "versions": doc}
        if doc.get("bucket") is None or doc.get("prefix") is None:
            raise GuardRefused(f"{FOUND_STATE} at s3://{safety_bucket}/{root} does not say which "
                               f"bucket and prefix it was taken of")
        copy = cls(store, str(doc["bucket"]), str(doc["prefix"]), safety_bucket,
                   root.rstrip("/"))
        copy.found = [FoundVersion(str(v["key"]), str(v["etag"]), int(v["size"]),
                                   bool(v["is_delete_marker"]), v.get("safety_key"))
                      for v in doc["versions"]]
        return copy

    def differences(self) -> list[str]:
        """Each key whose versions (content, order, delete markers) differ from how they were
        found, and how; empty when the prefix is exactly as found."""
        want, have = self._by_key(self.found), self._by_key(self.store.list_versions(
            self.bucket, self.prefix))
        out = []
        for key in sorted(set(want) | set(have)):
            w, h = want.get(key, []), have.get(key, [])
            if w != h:
                out.append(f"{key}: found {_show(w)}, now {_show(h)}")
        return out

    def matches(self) -> bool:
        """True when every key has the same versions (content, order, markers) as when found."""
        return not self.differences()

    def restore(self) -> RestoreReport:
        """Put the prefix back as found without deleting anything that is already right: per
        key, the oldest versions that still match what was found stay; everything above them
        is removed and the missing found versions are replayed, oldest first, from the safety
        copy (same content and order; new version ids). Keys that were not there when found
        lose their versions. Then verifies; raises StepFailed naming what still differs."""
        want = self._by_key_versions(self.found)
        have = self._by_key_versions(self.store.list_versions(self.bucket, self.prefix))
        report = RestoreReport()
        for key in sorted(set(want) | set(have)):
            w, h = want.get(key, []), have.get(key, [])
            keep = 0  # versions matching at the old end of the history, in order
            for fw, vh in zip(reversed(w), reversed(h), strict=False):
                if (fw.etag, fw.size, fw.is_delete_marker) != (vh.etag, vh.size,
                                                                 vh.is_delete_marker):
                    break
                keep += 1
            report.kept += keep
            for v in h[:len(h) - keep]:
                self.store.delete(self.bucket, key, v.version_id)
                report.removed.append(f"{key}@{v.version_id}")
            for f in reversed(w[:len(w) - keep]):
                if f.is_delete_marker:
                    self.store.delete(self.bucket, f.key)
                else:
                    assert f.safety_key is not None
                    body = self.store.open(self.safety_bucket, f.safety_key)
                    self.store.upload_stream(self.bucket, f.key, body)
                report.replayed.append(f.key)
        left = self.differences()
        if left:
            raise StepFailed(f"the prefix s3://{self.bucket}/{self.prefix} still differs from how "
                             f"it was found after restoring from {self.location}: "
                             + "; ".join(left[:10]))
        return report

    def discard(self) -> None:
        for key in self.store.list_keys(self.safety_bucket, self.root):
            self.store.delete(self.safety_bucket, key)

    @staticmethod
    def _by_key(versions: list[FoundVersion] | list[ObjectVersion]
                ) -> dict[str, list[tuple[str, int, bool]]]:
        out: dict[str, list[tuple[str, int, bool]]] = {}
        for v in versions:
            out.setdefault(v.key, []).append((v.etag, v.size, v.is_delete_marker))
        return out

    @staticmethod
    def _by_key_versions(versions: list[V]) -> dict[str, list[V]]:
        out: dict[str, list[V]] = {}
        for v in versions:
            out.setdefault(v.key, []).append(v)
        return out


@dataclass
class RestoreReport:
    """What :meth:`SafetyCopy.restore` did."""

    kept: int = 0
    removed: list[str] = field(default_factory=list)
    replayed: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.kept} version(s) already as found kept, {len(self.removed)} removed, "
                f"{len(self.replayed)} replayed from the safety copy")


def _show(versions: list[tuple[str, int, bool]]) -> str:
    if not versions:
        return "no version"
    return "[" + ", ".join("delete-marker" if m else f"{e[:8]}/{s}B" for e, s, m in versions) + "]"

