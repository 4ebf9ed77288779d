"""Restore points of object assets: where the runbook restores from, and what that loses.

- restic: the newest snapshot made before the fault (within the clock tolerance) whose files
  hash to the manifest, proven from restic's content ids where they were proven before
  (harness/proof.py); newer snapshots that are corrupt or unreadable are passed over with a
  deviation each, and the snapshot preflight proved is reused while it is still the newest;
- bucket versions: per key, the newest version made before the fault (that hashes to the
  manifest, when a fault wrote corrupt versions on top), as a :class:`VersionPlan`; the restore
  point is continuous protection, so its RPO is the window of writes actually lost.

The RPO itself is computed in one place, :func:`harness.model.measure_rpo`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from harness.errors import Inconclusive, StepFailed, TargetUnreachable
from harness.model import RESTORE_POINT_CLOCK_TOLERANCE_S, RestorePoint, iso, measure_rpo
from harness.proof import ProofCache, SnapshotProof, prove_snapshot
from harness.restore import RestoreTuning
from harness.runbook.bind import bound
from harness.runbook.object_state import (
    ObjectState,
    Source,
    VersionPlan,
    backup_rels,
    fault_time,
    hash_versions,
    restic,
    restore_point_bound,
    store,
)
from harness.scenario import RunbookStep
from harness.targets.restic import Snapshot
from harness.targets.s3 import ObjectVersion

if TYPE_CHECKING:
    from harness.context import DrillContext

#: what a located restore point loses: called with the point and the (key, written) writes
OnPoint = Callable[[RestorePoint, list[tuple[str, datetime]]], None]
#: newest snapshots tried before a backup restore point is declared missing
SNAPSHOTS_TRIED = 5


def _prove(ctx: DrillContext, state: ObjectState, snap: Snapshot, sample: int) -> SnapshotProof:
    """Does the snapshot hold this manifest's files? Trees plus a sample; see harness.proof."""
    a = ctx.asset
    assert a.backup_path is not None
    rels = backup_rels(ctx, state.keys)
    return prove_snapshot(restic(ctx), snap, a.backup_path,
                          {rel: state.expected[key] for rel, key in rels.items()},
                          ProofCache(ctx.work_dir / "proofs" / "restic-content.json"),
                          sample=sample, seed=ctx.drill_id, files=RestoreTuning.from_env().files)


def snapshots_before_fault(ctx: DrillContext, state: ObjectState) -> list[Snapshot]:
    """The asset's snapshots made before the fault, oldest first. A snapshot dated after it
    (beyond the clock tolerance) is never a restore point: a deviation says so, once."""
    a = ctx.asset
    r = restic(ctx)
    assert a.backup_path is not None
    at, what = fault_time(ctx)
    limit = restore_point_bound(ctx)
    snaps = r.snapshots(path=a.backup_path)
    for s in snaps:
        if s.time > limit and s.id not in state.noted:
            state.noted.add(s.id)
            ctx.deviation(
                f"restic snapshot {s.short_id} of {a.backup_path} is dated {iso(s.time)}, "
                f"{(s.time - at).total_seconds():.1f} s after {what}, beyond the clock "
                f"tolerance of {RESTORE_POINT_CLOCK_TOLERANCE_S:g} s: not used as a restore "
                f"point (made after the fault, or the backup host's clock is fast)")
    return [s for s in snaps if s.time <= limit]


def newest_good_snapshot(ctx: DrillContext, state: ObjectState, *, sample: int) -> Snapshot:
    """The newest snapshot made before the fault whose files hash to the manifest (proven from
    restic's content ids where proven before, read otherwise, plus ``sample`` files read in
    full). A newer one that is corrupt or unreadable is passed over with a deviation. The
    snapshot preflight proved is taken as it is when it is still the newest candidate."""
    a = ctx.asset
    snaps = snapshots_before_fault(ctx, state)
    if not snaps:
        raise Inconclusive(f"no restore point: no restic snapshot of {a.backup_path} made "
                           f"before the fault in {restic(ctx).target.repository}")
    if state.proven is not None and snaps[-1].id == state.proven.id:
        ctx.event("restore-point.reused", snapshot=state.proven.id,
                  reason="the snapshot proven in preflight is still the newest before the fault")
        return state.proven
    for rejected, snap in enumerate(reversed(snaps[-SNAPSHOTS_TRIED:])):
        try:
            proof = _prove(ctx, state, snap, sample)
        except TargetUnreachable as exc:
            why = f"unreadable ({exc})"
        else:
            if proof.ok:
                ctx.event("restorable.proven", source="restic", snapshot=snap.id,
                          snapshot_utc=snap.time.isoformat(), **proof.detail())
                if rejected:
                    ctx.deviation(f"fell back to restic snapshot {snap.short_id} "
                                  f"({iso(snap.time)}): {rejected} newer snapshot(s) rejected")
                return snap
            first = proof.bad[0]
            why = (f"corrupt: {len(proof.bad)} file(s) do not match the manifest (first: "
                   f"{first}: {proof.reasons[first]})")
        ctx.event("restore-point.rejected", snapshot=snap.id, reason=why[:300])
        if snap.id not in state.noted:
            state.noted.add(snap.id)
            rpo = measure_rpo(ctx.journal.events, _snapshot_point(ctx, snap))
            would = "" if rpo.seconds is None else f"; RPO would have been {rpo.seconds:.3f} s"
            ctx.deviation(f"backup {snap.short_id} of {a.backup_path} ({iso(snap.time)}) is "
                          f"{why}: not restored{would}")
    raise Inconclusive(f"no restore point: none of the newest {min(SNAPSHOTS_TRIED, len(snaps))} "
                       f"snapshots of {a.backup_path} holds a copy matching the manifest")


def _snapshot_point(ctx: DrillContext, snap: Snapshot) -> RestorePoint:
    return RestorePoint("restic-snapshot", snap.id, snap.time, restic(ctx).target.repository)


def locate_restore_point(ctx: DrillContext, state: ObjectState,
                         on_point: OnPoint | None = None) -> RunbookStep:
    """The newest copy that predates the fault; ``on_point`` gets it and the writes it loses."""

    def locate(ctx: DrillContext, state: ObjectState) -> None:
        if state.source is Source.BACKUP:
            state.snapshot = newest_good_snapshot(ctx, state, sample=0)
            ctx.findings.restore_point = _snapshot_point(ctx, state.snapshot)
        else:
            state.plan = plan_versions(ctx, state)
            set_version_restore_point(ctx, state, state.plan)
        point = ctx.findings.restore_point
        if point is None:
            raise StepFailed("no restore point was located")
        if on_point is not None:
            on_point(point, lost_writes(state, point))

    return bound("locate-restore-point", locate, ctx, state, "newest copy that predates the fault")


def plan_versions(ctx: DrillContext, state: ObjectState) -> dict[str, VersionPlan]:
    """For each key to restore, the newest version made before the fault (that hashes to the
    manifest, when ``verify_versions``), and what restoring it loses."""
    a = ctx.asset
    history: dict[str, list[ObjectVersion]] = {}
    for v in store(ctx).list_versions(a.bucket, a.prefix):
        history.setdefault(v.key, []).append(v)
    limit, (t0, _) = restore_point_bound(ctx), fault_time(ctx)
    plan: dict[str, VersionPlan] = {}
    for key in state.targets:
        markers: list[str] = []
        newer: list[ObjectVersion] = []
        after = rejected = 0
        for v in history.get(key, []):
            if v.is_delete_marker:
                markers.append(v.version_id)
                continue
            if v.last_modified > limit:
                # written after the fault: not a restore point (and not a write it lost)
                ctx.deviation(f"version {v.version_id} of {key} is dated "
                              f"{iso(v.last_modified)}, after the fault: not restored")
                after += 1
                continue
            if state.verify_versions and hash_versions(
                    ctx, state, {key: v}, "locate")[key][0] != state.expected[key][0]:
                # not the known-good bytes: the fault's own write when made after t0, else a
                # write that restoring an older version loses
                if v.last_modified >= t0:
                    rejected += 1
                else:
                    newer.append(v)
                continue
            lost = tuple(n.last_modified for n in newer)
            plan[key] = VersionPlan(key, v, tuple(markers), len(lost), lost, after, rejected)
            break
        else:
            raise StepFailed(f"no version of {key} made before the fault "
                             f"{'that matches the manifest ' if state.verify_versions else ''}"
                             f"is left in bucket {a.bucket}")
    return plan


def set_version_restore_point(ctx: DrillContext, state: ObjectState,
                              plan: dict[str, VersionPlan]) -> None:
    """Record the restore point a version plan amounts to (also for a custom locator)."""
    a = ctx.asset
    chosen = plan.get(a.manifest_key) or max(plan.values(), key=lambda p: p.version.last_modified)
    # a plan that counts newer versions without their times (a custom locator): the window is
    # taken from the chosen version on, which can only overstate it
    lost = [w for p in plan.values()
            for w in (p.lost_writes or ((p.version.last_modified,) if p.newer_versions else ()))]
    # bucket versioning keeps every write: the RPO is the window of writes actually lost
    ctx.findings.restore_point = RestorePoint(
        "bucket-version", chosen.version.version_id,
        max(p.version.last_modified for p in plan.values()), f"s3://{a.bucket}/{a.prefix}",
        newer_versions_lost=sum(p.newer_versions for p in plan.values()),
        continuous=True, oldest_lost_write=min(lost) if lost else None)


def lost_writes(state: ObjectState, point: RestorePoint) -> list[tuple[str, datetime]]:
    """(key, written) of the writes restoring ``point`` does not bring back: for bucket
    versions, exactly the plan's; for a snapshot, every restored key's version at baseline
    (those written after the snapshot are the ones lost)."""
    if point.continuous:
        return [(p.key, w) for p in state.plan.values() for w in p.lost_writes]
    wanted = set(state.targets)
    return [(v.key, v.last_modified) for v in state.baseline_versions if v.key in wanted]
