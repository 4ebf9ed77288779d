"""The typed per-drill state of an object-asset drill, its adapters, and hashing by version.

Shared by :mod:`harness.runbook.objects` (phases and steps) and
:mod:`harness.runbook.restore_points` (locating what to restore). Hashes read from the store are
remembered per object *version* (:attr:`ObjectState.seen`): a version id names immutable bytes,
so a later check of the same version needs no second read (versionless ``null`` ids of an
unversioned bucket are never remembered).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING

from harness.errors import Inconclusive, StepFailed
from harness.guards import SafetyCopy
from harness.integrity import Manifest, ManifestEntry
from harness.model import RESTORE_POINT_CLOCK_TOLERANCE_S, event_by_name
from harness.targets.protocols import BackupRepo, ObjectStore
from harness.targets.restic import Snapshot
from harness.targets.s3 import ObjectVersion

if TYPE_CHECKING:
    from harness.context import DrillContext

Hashes = dict[str, tuple[str | None, int]]
#: the store key of a manifest entry, given the asset's prefix
KeyOf = Callable[[str, ManifestEntry], str]


def prefixed(prefix: str, entry: ManifestEntry) -> str:
    return prefix + entry.path


def content_addressed(prefix: str, entry: ManifestEntry) -> str:
    """Dataset layout (as DVC or lakeFS keep blobs): ``objects/<sha[:2]>/<sha[2:]>``."""
    return f"{prefix}objects/{entry.sha256[:2]}/{entry.sha256[2:]}"


class Source(str, Enum):
    VERSIONS = "bucket-versions"
    BACKUP = "restic"


@dataclass(frozen=True)
class VersionPlan:
    """How one key comes back from bucket history."""

    key: str
    version: ObjectVersion
    markers_above: tuple[str, ...]  # delete-marker version ids newer than the chosen version
    newer_versions: int  # real versions newer than the chosen one (data lost if restored)
    #: when each of those newer versions was written (the writes restoring this one loses)
    lost_writes: tuple[datetime, ...] = ()
    #: real versions above the chosen one written after the fault (kept, never restored)
    after_fault: int = 0
    #: versions above the chosen one that do not hash to the manifest and were written by the
    #: fault itself (not data anyone lost)
    rejected: int = 0


@dataclass
class ObjectState:
    """What an object-asset drill learns in one phase and uses in a later one."""

    source: Source = Source.BACKUP
    key_of: KeyOf = prefixed
    #: choose in bucket history only a version that hashes to the manifest (a fault wrote a
    #: corrupt newer one); otherwise the newest version made before the fault
    verify_versions: bool = False
    manifest: Manifest | None = None
    #: key -> (sha256, size; -1 for the manifest itself) for every object in the blast radius
    expected: dict[str, tuple[str, int]] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    #: key -> (etag, size) of each object's current version when preflight found it intact
    found_current: dict[str, tuple[str, int]] = field(default_factory=dict)
    safety: SafetyCopy | None = None
    #: each key's current version at baseline
    baseline_versions: list[ObjectVersion] = field(default_factory=list)
    #: the snapshot preflight proved
    proven: Snapshot | None = None
    #: the keys the runbook restores (None: every key)
    restore_keys: list[str] | None = None
    snapshot: Snapshot | None = None
    plan: dict[str, VersionPlan] = field(default_factory=dict)
    #: (sha256, size) of what pull sent, hashed on the way
    pulled: Hashes = field(default_factory=dict)
    #: (key, version id) -> (sha256, size) as read from the store
    seen: dict[tuple[str, str], tuple[str | None, int]] = field(default_factory=dict)
    #: restore points already reported as passed over (one deviation each)
    noted: set[str] = field(default_factory=set)

    @property
    def targets(self) -> list[str]:
        return self.keys if self.restore_keys is None else self.restore_keys

    def require_manifest(self) -> Manifest:
        if self.manifest is None:
            raise Inconclusive("the asset's manifest was not read (preflight did not finish)")
        return self.manifest


# -- adapters ------------------------------------------------------------------------------------


def store(ctx: DrillContext) -> ObjectStore:
    return ctx.adapters.s3(ctx.asset.store)


def s3(ctx: DrillContext) -> ObjectStore:
    return ctx.adapters.s3(ctx.asset.store)


def restic(ctx: DrillContext) -> BackupRepo:
    a = ctx.asset
    if a.backup is None or a.backup_path is None:
        raise Inconclusive(f"asset {a.id} has no backup target and path in the inventory: there "
                           f"is nothing to restore from")
    return ctx.adapters.restic(a.backup)


def repo(ctx: DrillContext) -> BackupRepo:
    return restic(ctx)


# -- small helpers -------------------------------------------------------------------------------


def backup_rels(ctx: DrillContext, keys: list[str]) -> dict[str, str]:
    """Path relative to the backup directory -> store key."""
    prefix = ctx.asset.prefix
    return {k[len(prefix):]: k for k in keys}


def fault_time(ctx: DrillContext) -> tuple[datetime, str]:
    """(t0, "the fault") once injected; before that (preflight), (now, "now")."""
    t0 = event_by_name(ctx.journal.events, "fault.injected")
    return (t0.utc, "the fault") if t0 is not None else (ctx.clock.utc(), "now")


def restore_point_bound(ctx: DrillContext) -> datetime:
    """Restore points must predate the fault, give or take the documented clock tolerance."""
    return fault_time(ctx)[0] + timedelta(seconds=RESTORE_POINT_CLOCK_TOLERANCE_S)


def current_versions(ctx: DrillContext, keys: list[str]) -> dict[str, ObjectVersion]:
    a, wanted = ctx.asset, set(keys)
    return {v.key: v for v in store(ctx).list_versions(a.bucket, a.prefix)
            if v.key in wanted and v.is_latest and not v.is_delete_marker}


def hash_versions(ctx: DrillContext, state: ObjectState, versions: dict[str, ObjectVersion],
                  what: str) -> Hashes:
    """Hash each (key, version), reading only versions not read before."""
    a = ctx.asset
    cacheable = {k: v for k, v in versions.items() if v.version_id not in ("", "null")}
    out: Hashes = {k: state.seen[(k, v.version_id)] for k, v in cacheable.items()
                   if (k, v.version_id) in state.seen}
    todo = [(k, v.version_id if k in cacheable else None) for k, v in versions.items()
            if k not in out]
    for k, h in store(ctx).hash_objects(a.bucket, todo).items():
        out[k] = h
        if k in cacheable:
            state.seen[(k, versions[k].version_id)] = h
    ctx.event("objects.hashed", what=what, read=len(todo), reused=len(versions) - len(todo))
    return out


def current_hashes(ctx: DrillContext, state: ObjectState, keys: list[str], what: str) -> Hashes:
    """(sha256, size) of each key's current version; (None, 0) for a key with none."""
    got = hash_versions(ctx, state, current_versions(ctx, keys), what)
    return {k: got.get(k, (None, 0)) for k in keys}


def compare(ctx: DrillContext, state: ObjectState, got: Hashes, what: str,
            keys: list[str] | None = None) -> None:
    """One integrity check per key; StepFailed naming the objects that differ."""
    keys = state.keys if keys is None else keys
    bad = [k for k in keys
           if not ctx.integrity(k, state.expected[k][0], got.get(k, (None, 0))[0])]
    if bad:
        raise StepFailed(f"{len(bad)} of {len(keys)} {what} object(s) do not match the "
                         f"manifest: {', '.join(bad[:3])}")
