"""Runbook steps and phase helpers for assets that are objects in an S3 store, described by a
SHA-256 manifest (weights, adapters, configs, dataset versions).

A scenario keeps one :class:`~harness.runbook.object_state.ObjectState` (created in its
``__init__``) and composes:

- preflight: :func:`preflight` (manifest read, asset intact, room for the safety copy, a
  restore point proven before anything is touched);
- baseline: :func:`take_safety_copy` (every version copied server-side, then proven);
- inject/detect helpers for deletions: :func:`delete_objects`, :func:`objects_missing`;
- the runbook: :func:`~harness.runbook.restore_points.locate_restore_point`, :func:`pull`,
  :func:`verify_sha256` and, for faults that damage only some objects, :func:`integrity_scan`
  first (:func:`restore_steps` gives the usual list);
- verify: :func:`verify_stored` (every object read back from the store, independently of the
  runbook's own check);
- revert: :func:`put_back` then :func:`discard_safety_copy`; cleanup: the latter alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.capacity import require_room
from harness.errors import Inconclusive, StepFailed
from harness.guards import FoundVersion, SafetyCopy
from harness.integrity import Manifest
from harness.restore import RestoreTuning, restore_to_store
from harness.runbook.bind import bound
from harness.runbook.object_state import (
    Hashes,
    ObjectState,
    Source,
    backup_rels,
    compare,
    current_hashes,
    current_versions,
    hash_versions,
    restic,
    s3,
    store,
)
from harness.runbook.restore_points import OnPoint, locate_restore_point, newest_good_snapshot
from harness.scenario import RunbookStep

if TYPE_CHECKING:
    from harness.context import DrillContext


def read_manifest(ctx: DrillContext, state: ObjectState) -> Manifest:
    """The store answers; the asset's manifest gives every key in scope and its hash."""
    a = ctx.asset
    s = store(ctx)
    s.ping()
    raw = s.read_bytes(a.bucket, a.manifest_key)
    if raw is None:
        raise Inconclusive(f"no manifest at s3://{a.bucket}/{a.manifest_key}: cannot tell a good "
                           f"restore from a bad one")
    m = state.manifest = Manifest.from_bytes(raw, source=f"s3://{a.bucket}/{a.manifest_key}")
    state.expected = {state.key_of(a.prefix, f): (f.sha256, f.size) for f in m.files}
    state.expected[a.manifest_key] = (m.raw_sha256, -1)
    state.keys = sorted(state.expected)
    # the version in scope is the manifest's own hash: it names this exact set of files
    ctx.event("asset.version", model=m.model, version=f"manifest-sha256:{m.raw_sha256}",
              manifest_created_utc=m.created_utc)
    return m


def preflight(ctx: DrillContext, state: ObjectState) -> None:
    """Everything before the safety copy: intact, room, a proven restore point."""
    if state.manifest is None:
        read_manifest(ctx, state)
    _require_room(ctx, state)
    _check_intact(ctx, state)
    if state.source is Source.VERSIONS:
        a = ctx.asset
        if not store(ctx).versioning_enabled(a.bucket):
            raise Inconclusive(f"no restore point: versioning is not enabled on bucket "
                               f"{a.bucket}, so a delete would be permanent")
        # the current versions were hashed against the manifest by _check_intact
        ctx.event("restorable.proven", source="bucket-versions", objects=len(state.keys))
    else:
        state.proven = newest_good_snapshot(ctx, state, sample=1)


def _check_intact(ctx: DrillContext, state: ObjectState) -> None:
    """Every object in the blast radius is in the store as the manifest says, whatever the
    variant: a drill on an asset that is already damaged would destroy what is left of it and
    blame the drill. Records each object's current version for the safety copy check."""
    a = ctx.asset
    current = current_versions(ctx, state.keys)
    state.found_current = {k: (v.etag, v.size) for k, v in current.items()}
    got = hash_versions(ctx, state, current, "preflight")
    damaged = [k for k in state.keys
               if k not in current or got[k][0] != state.expected[k][0]]
    if damaged:
        detail = ", ".join(f"{k} ({'missing' if k not in current else 'differs'})"
                           for k in damaged[:10])
        more = f" and {len(damaged) - 10} more" if len(damaged) > 10 else ""
        raise Inconclusive(
            f"already damaged before the drill: {len(damaged)} of {len(state.keys)} object(s) "
            f"in s3://{a.bucket}/{a.prefix} do not match the manifest: {detail}{more}; "
            f"nothing was touched - repair the asset (or its manifest) first")
    ctx.event("asset.intact", objects=len(state.keys))


def _require_room(ctx: DrillContext, state: ObjectState) -> None:
    """Refuse (INCONCLUSIVE, nothing touched) when the store cannot hold the safety copy
    (every version under the prefix) plus the copy the runbook writes back."""
    a = ctx.asset
    safety = sum(v.size for v in store(ctx).list_versions(a.bucket, a.prefix)
                 if not v.is_delete_marker)
    restored = sum(f.size for f in state.require_manifest().files)
    space = require_room(ctx.inventory, a.store, safety + restored,
                         f"s3://{a.bucket}/{a.prefix} ({safety} B of versions to copy, "
                         f"{restored} B to restore)")
    ctx.event("capacity.checked", needed_bytes=safety + restored,
              free_bytes=space.free_bytes, source=space.source)


# -- baseline, cleanup, revert ---------------------------------------------------------------------


def take_safety_copy(ctx: DrillContext, state: ObjectState) -> None:
    """Copy every version aside, prove the copy holds what preflight found, and record each
    key's current version. Inconclusive (nothing touched) when the copy is not proven."""
    a = ctx.asset
    state.safety = SafetyCopy(s3(ctx), a.bucket, a.prefix, ctx.inventory.safety_bucket,
                              ctx.drill_id)
    copied = state.safety.take()
    ctx.event("safety.copy.taken", versions=copied,
              location=f"s3://{state.safety.safety_bucket}/{state.safety.root}")
    _prove_safety_copy(ctx, state, state.safety)
    state.baseline_versions = list(current_versions(ctx, state.keys).values())


def _prove_safety_copy(ctx: DrillContext, state: ObjectState, safety: SafetyCopy) -> None:
    """The copy holds what preflight proved: the same current version of every object (the
    target did not change in between) and, read back from the safety bucket, bytes that hash
    to the manifest. Otherwise stop before anything is touched."""
    current: dict[str, FoundVersion] = {}
    for f in safety.found:
        current.setdefault(f.key, f)  # versions are listed newest first
    changed = [k for k in state.keys
               if k not in current or current[k].is_delete_marker
               or (current[k].etag, current[k].size) != state.found_current.get(k)]
    if changed:
        raise Inconclusive(
            f"the target changed between preflight and the safety copy: {len(changed)} "
            f"object(s) differ ({', '.join(changed[:5])}); another writer is at work - "
            f"nothing was touched")
    copies = [(k, str(current[k].safety_key)) for k in state.keys]
    got = store(ctx).hash_objects(safety.safety_bucket, [(dest, None) for _, dest in copies])
    bad = [k for k, dest in copies if got[dest][0] != state.expected[k][0]]
    if bad:
        raise Inconclusive(f"the safety copy is not proven: {len(bad)} copied object(s) do not "
                           f"hash to the manifest ({', '.join(bad[:5])}); nothing was touched")
    ctx.event("safety.copy.proven", objects=len(copies), method="sha256 of the copies")


def discard_safety_copy(ctx: DrillContext, state: ObjectState, reason: str) -> None:
    if state.safety is not None:
        state.safety.discard()
        ctx.event("safety.copy.discarded", reason=reason)


def put_back(ctx: DrillContext, state: ObjectState) -> bool:
    """Revert the objects: the store back as found (from the safety copy where it differs),
    then every object checked against the manifest. False when no safety copy was taken (the
    drill never reached baseline); StepFailed, keeping the copy, when objects still differ."""
    if state.safety is None:
        return False
    if not state.safety.matches():
        ctx.progress("  store differs from how it was found: putting it back")
        state.safety.restore()
        ctx.event("revert.restored-from-safety-copy")
    got = current_hashes(ctx, state, state.keys, "revert")
    bad = [k for k in state.keys if got[k][0] != state.expected[k][0]]
    if bad:
        raise StepFailed(f"after revert {len(bad)} object(s) still differ from the manifest; "
                         f"safety copy kept at {state.safety.location}")
    return True


# -- inject and detect for deletions -------------------------------------------------------------


def delete_objects(ctx: DrillContext, state: ObjectState, *, every_version: bool) -> None:
    """The fault: delete every key in scope, as ``aws s3 rm`` does (delete markers) or with
    every version (a purge)."""
    a = ctx.asset
    s = store(ctx)
    if not every_version:
        for key in state.keys:
            s.delete(a.bucket, key)
    else:
        wanted = set(state.keys)
        for v in s.list_versions(a.bucket, a.prefix):
            if v.key in wanted:
                s.delete(a.bucket, v.key, v.version_id)
    ctx.event("fault.objects.deleted", objects=len(state.keys), variant=ctx.variant)


def objects_missing(ctx: DrillContext, state: ObjectState) -> bool:
    a = ctx.asset
    s = store(ctx)
    return any(not s.exists(a.bucket, k) for k in [a.manifest_key, *state.keys])


# -- runbook steps -------------------------------------------------------------------------------


def integrity_scan(ctx: DrillContext, state: ObjectState) -> RunbookStep:
    """Hash every object against the known-good manifest; the runbook then restores only the
    ones that differ (objects hashed since at the same version are not read again)."""
    return bound("integrity-scan", _scan, ctx, state,
                 "hash every object against the known-good manifest")


def _scan(ctx: DrillContext, state: ObjectState) -> None:
    got = current_hashes(ctx, state, state.keys, "integrity-scan")
    state.restore_keys = [k for k in state.keys if got[k][0] != state.expected[k][0]]
    if not state.restore_keys:
        raise StepFailed("the scan finds nothing to repair")
    ctx.event("integrity.scan.done", corrupted=len(state.restore_keys),
              first=state.restore_keys[0])


def pull(ctx: DrillContext, state: ObjectState) -> RunbookStep:
    return bound("pull", _pull, ctx, state, "bring the objects back into the store")


def _pull(ctx: DrillContext, state: ObjectState) -> None:
    a = ctx.asset
    if state.source is Source.VERSIONS:
        s = store(ctx)
        for p in state.plan.values():
            if p.newer_versions == p.after_fault == p.rejected == 0:
                # only delete markers above the chosen version: removing them puts history
                # back exactly as it was
                for marker in p.markers_above:
                    s.delete(a.bucket, p.key, marker)
            else:
                s.copy_version(a.bucket, p.key, p.version.version_id, a.bucket, p.key)
        return
    if state.snapshot is None:
        raise StepFailed("no snapshot was located to pull from")
    assert a.backup_path is not None
    tuning = RestoreTuning.from_env()
    # largest first: the long streams start at once, small files fill the gaps
    ordered = sorted(state.targets, key=lambda k: -state.expected[k][1])
    report = restore_to_store(restic(ctx), state.snapshot.id, a.backup_path,
                              backup_rels(ctx, ordered), s3(ctx), a.bucket, tuning=tuning,
                              scratch=ctx.work_dir / "scratch")
    state.pulled = report.hashes()
    ctx.event("pull.transferred", method=report.method, files=len(report.transfers),
              bytes=report.bytes, seconds=round(report.seconds, 3),
              restic_s=round(report.restic_seconds, 3), parallel_files=tuning.files)


def verify_sha256(ctx: DrillContext, state: ObjectState) -> RunbookStep:
    return bound("verify-sha256", _verify_sha256, ctx, state, "every object against the manifest")


def _verify_sha256(ctx: DrillContext, state: ObjectState) -> None:
    """What pull sent, from the hashes taken while sending it (no second read); every other
    object at its current version (read unless that version was read before). The independent
    re-read is the verify phase's, after the service is back: run beside the node's reload it
    took the CPU the reload needed and delayed the service (both read the store at once)."""
    got: Hashes = {}
    if state.source is Source.BACKUP:
        got = {k: state.pulled.get(k, (None, 0)) for k in state.targets}
    got.update(current_hashes(ctx, state, [k for k in state.keys if k not in got],
                              "verify-sha256"))
    compare(ctx, state, got, "restored")


def verify_stored(ctx: DrillContext, state: ObjectState) -> None:
    """Independent of the runbook: every object read back from the store at its current version
    (a version read since it became current is not read again) against the manifest taken
    before the fault; a difference is a FAIL."""
    got = current_hashes(ctx, state, state.keys, "verify")
    try:
        compare(ctx, state, got, "stored")
    except StepFailed as exc:
        ctx.fail(f"integrity: {exc}")


def restore_steps(ctx: DrillContext, state: ObjectState,
                  on_point: OnPoint | None = None) -> list[RunbookStep]:
    """Locate the restore point, pull, verify SHA-256: the object half of a restore runbook."""
    return [locate_restore_point(ctx, state, on_point), pull(ctx, state),
            verify_sha256(ctx, state)]
