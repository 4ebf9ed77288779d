"""Scenario ``artifact-deletion``: a model's weights disappear from the artifact store.

Variants:
  soft   the objects are deleted as ``aws s3 rm`` would on a versioned bucket (delete markers);
         recovery restores the newest real version of each object from bucket history.
  purge  every version of every object is gone; recovery streams each file out of the newest
         restic snapshot on the secondary site into the store, several at once, hashing it on the
         way (harness/restore.py); the preflight proof of that snapshot is cached by restic
         content id after the first full read (harness/proof.py).

Blast radius: the asset's manifest and every file it lists, in the asset's bucket, nothing else.
Verification is independent of the runbook: every object is re-read from the store (starting
as soon as verify-sha256 passes, so the re-read overlaps the node's reload; for soft, the
versions verify-sha256 hashed are not read again if none changed) and compared with the manifest
taken before the fault, and the endpoint must answer the golden inputs with outputs
bit-identical to the baseline.
"""

from __future__ import annotations

import concurrent.futures
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, ClassVar

from harness.capacity import require_room
from harness.errors import Inconclusive, StepFailed
from harness.guards import FoundVersion, SafetyCopy
from harness.integrity import Manifest
from harness.model import RESTORE_POINT_CLOCK_TOLERANCE_S, RestorePoint, event_by_name, iso
from harness.proof import ProofCache, SnapshotProof, prove_snapshot
from harness.restore import RestoreTuning, restore_to_store
from harness.scenario import RunbookStep, Scenario
from harness.targets.inference import InferenceEndpoint
from harness.targets.restic import ResticRepo, Snapshot
from harness.targets.s3 import ObjectVersion, S3Store

if TYPE_CHECKING:
    from harness.context import DrillContext


@dataclass(frozen=True)
class Golden:
    inputs: list[list[float]]
    outputs: list[list[float]] | None


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


class ArtifactDeletion(Scenario):
    name: ClassVar[str] = "artifact-deletion"
    summary: ClassVar[str] = "delete a model's weights from the artifact store and restore them"
    variants: ClassVar[tuple[str, ...]] = ("soft", "purge")
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2)
    destructive: ClassVar[bool] = True
    blast_radius: ClassVar[str] = "the asset's manifest and the files it lists, in its bucket"

    manifest: Manifest
    keys: list[str]
    golden: Golden | None = None
    baseline_outputs: list[list[float]] | None = None
    safety: SafetyCopy | None = None
    snapshot: Snapshot | None = None
    plan: dict[str, VersionPlan]
    pulled: dict[str, tuple[str | None, int]]
    #: key -> (etag, size) of each object's current version when preflight found it intact
    found_current: dict[str, tuple[str, int]]
    #: restore points already reported as passed over (one deviation each)
    _noted: set[str]

    def __init__(self, ctx: DrillContext) -> None:
        super().__init__(ctx)
        self._noted = set()
    #: the independent re-read of the store, started once the runbook's own check passed so that
    #: it overlaps the node's reload; verify() takes its result
    _reread: concurrent.futures.Future[dict[str, tuple[str | None, int]]] | None = None
    #: (current version ids, their hashes) from verify-sha256 of bucket versions
    _hashed_versions: tuple[dict[str, str], dict[str, tuple[str | None, int]]] | None = None

    # -- helpers ------------------------------------------------------------------------------

    @property
    def from_versions(self) -> bool:
        """Recover from bucket history (soft) rather than from the backup (purge)."""
        return self.ctx.variant == "soft"

    @property
    def store(self) -> S3Store:
        return self.ctx.adapters.s3(self.ctx.asset.store)

    @property
    def endpoint(self) -> InferenceEndpoint | None:
        a = self.ctx.asset
        return None if a.served_by is None else self.ctx.adapters.inference(a.served_by)

    @property
    def repo(self) -> ResticRepo:
        a = self.ctx.asset
        if a.backup is None:
            raise Inconclusive(f"asset {a.id} has no backup target in the inventory: the purge "
                               f"variant has nothing to restore from")
        return self.ctx.adapters.restic(a.backup)

    def _expected(self) -> dict[str, tuple[str, int]]:
        """key -> (sha256, size) for every object in the blast radius, manifest included."""
        a = self.ctx.asset
        out = {a.prefix + f.path: (f.sha256, f.size) for f in self.manifest.files}
        out[a.manifest_key] = (self.manifest.raw_sha256, -1)
        return out

    def _backup_rels(self, keys: list[str] | None = None) -> dict[str, str]:
        """Path relative to the backup directory -> store key, for ``keys`` (default: all)."""
        prefix = self.ctx.asset.prefix
        return {k[len(prefix):]: k for k in (self.keys if keys is None else keys)}

    def _proofs(self) -> ProofCache:
        return ProofCache(self.ctx.work_dir / "proofs" / "restic-content.json")

    def _prove(self, snap: Snapshot, *, sample: int) -> SnapshotProof:
        """Does the snapshot hold this manifest's files? Trees plus a sample; see harness.proof."""
        a = self.ctx.asset
        assert a.backup_path is not None
        expected = self._expected()
        rels = self._backup_rels()
        return prove_snapshot(self.repo, snap, a.backup_path,
                              {rel: expected[key] for rel, key in rels.items()}, self._proofs(),
                              sample=sample, seed=self.ctx.drill_id,
                              files=RestoreTuning.from_env().files)

    def snapshot_holds_baseline(self, snap: Snapshot) -> bool:
        """For locators: the snapshot holds every file of the known-good manifest (proven from
        restic's content ids where it was proven before, read in full otherwise)."""
        proof = self._prove(snap, sample=0)
        self.ctx.event("restore-point.checked", snapshot=snap.id, holds_manifest=proof.ok,
                       **proof.detail())
        return proof.ok

    def _restore_from_backup(self, snap: Snapshot, keys: list[str]) -> dict[str, tuple[str | None,
                                                                                        int]]:
        """Stream ``keys`` out of the snapshot into the store in parallel, hashed on the way."""
        a = self.ctx.asset
        assert a.backup_path is not None
        tuning = RestoreTuning.from_env()
        sizes = {a.prefix + f.path: f.size for f in self.manifest.files}
        # largest first: the long streams start at once, small files fill the gaps
        ordered = sorted(keys, key=lambda k: -sizes.get(k, 0))
        report = restore_to_store(self.repo, snap.id, a.backup_path, self._backup_rels(ordered),
                                  self.store, a.bucket, tuning=tuning,
                                  scratch=self.ctx.work_dir / "scratch")
        self.ctx.event("pull.transferred", method=report.method, files=len(report.transfers),
                       bytes=report.bytes, seconds=round(report.seconds, 3),
                       restic_s=round(report.restic_seconds, 3), parallel_files=tuning.files,
                       mib_per_s=round(report.bytes / 2**20 / max(report.seconds, 1e-6), 1))
        return report.hashes()

    def _start_reread(self) -> None:
        """Begin the independent re-read of every object now, in the background."""
        a = self.ctx.asset
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="verify-reread")
        self._reread = pool.submit(self.store.hash_objects, a.bucket,
                                   [(k, None) for k in self.keys])
        pool.shutdown(wait=False)

    def _current_versions(self) -> dict[str, str]:
        a = self.ctx.asset
        wanted = set(self.keys)
        return {v.key: v.version_id for v in self.store.list_versions(a.bucket, a.prefix)
                if v.key in wanted and v.is_latest and not v.is_delete_marker}

    def _reread_hashes(self) -> dict[str, tuple[str | None, int]]:
        """The independent re-read: the one started in the background, else one made now; not
        made at all when verify-sha256 hashed these very object versions server-side (nothing
        the harness sent) and no version changed since."""
        a = self.ctx.asset
        if self._reread is not None:
            started, self._reread = self._reread, None
            return started.result()
        if self._hashed_versions is not None:
            versions, got = self._hashed_versions
            self._hashed_versions = None
            if versions == self._current_versions():
                self.ctx.event("verify.reused", reason="the object versions hashed in "
                               "verify-sha256 are still current", objects=len(got))
                return got
        return self.store.hash_objects(a.bucket, [(k, None) for k in self.keys])

    def _fault_time(self) -> tuple[datetime, str]:
        """(t0, "the fault") once injected; before that (preflight), (now, "now")."""
        t0 = event_by_name(self.ctx.journal.events, "fault.injected")
        return (t0.utc, "the fault") if t0 is not None else (self.ctx.clock.utc(), "now")

    def _restore_point_bound(self) -> datetime:
        """Restore points must predate the fault, give or take the documented clock tolerance."""
        return self._fault_time()[0] + timedelta(seconds=RESTORE_POINT_CLOCK_TOLERANCE_S)

    def _snapshots_before_fault(self) -> list[Snapshot]:
        """The asset's snapshots made before the fault, oldest first. A snapshot dated after it
        (beyond the clock tolerance) is never a restore point: a deviation says so, once."""
        a = self.ctx.asset
        assert a.backup_path is not None
        at, what = self._fault_time()
        bound = self._restore_point_bound()
        snaps = self.repo.snapshots(path=a.backup_path)
        for s in snaps:
            if s.time > bound and s.id not in self._noted:
                self._noted.add(s.id)
                self.ctx.deviation(
                    f"restic snapshot {s.short_id} of {a.backup_path} is dated {iso(s.time)}, "
                    f"{(s.time - at).total_seconds():.1f} s after {what}, beyond the clock "
                    f"tolerance of {RESTORE_POINT_CLOCK_TOLERANCE_S:g} s: not used as a restore "
                    f"point (made after the fault, or the backup host's clock is fast)")
        return [s for s in snaps if s.time <= bound]

    def _newest_snapshot(self) -> Snapshot:
        a = self.ctx.asset
        assert a.backup_path is not None
        snaps = self._snapshots_before_fault()
        if not snaps:
            raise Inconclusive(f"no restore point: no restic snapshot of {a.backup_path} made "
                               f"before the fault in {self.repo.target.repository}")
        return snaps[-1]

    # -- phases -------------------------------------------------------------------------------

    def preflight(self) -> None:
        a = self.ctx.asset
        self.store.ping()
        raw = self.store.read_bytes(a.bucket, a.manifest_key)
        if raw is None:
            raise Inconclusive(f"no manifest at s3://{a.bucket}/{a.manifest_key}: cannot tell "
                               f"a good restore from a bad one")
        self.manifest = Manifest.from_bytes(raw, source=f"s3://{a.bucket}/{a.manifest_key}")
        self.keys = sorted(self._expected())
        # the version in scope is the manifest's own hash: it names this exact set of files
        self.ctx.event("asset.version", model=self.manifest.model,
                       version=f"manifest-sha256:{self.manifest.raw_sha256}",
                       manifest_created_utc=self.manifest.created_utc)
        if self.endpoint is not None:
            r = self.endpoint.readiness()
            if not r.ready:
                raise Inconclusive(f"endpoint {self.endpoint.target.url} is not ready before the "
                                   f"fault (HTTP {r.status} {r.detail}): nothing to compare with")
        if a.golden is not None:
            doc = json.loads(a.golden.read_text())
            self.golden = Golden(doc["inputs"], doc.get("outputs"))
        self._require_room()
        self._check_intact()
        if self.from_versions:
            self._prove_versions()
        else:
            self._prove_backup()

    def _check_intact(self) -> None:
        """Every object in the blast radius is in the store as the manifest says, whatever the
        variant: a drill on an asset that is already damaged would destroy what is left of it
        and blame the drill. Records each object's current version for the safety copy check."""
        a = self.ctx.asset
        wanted = set(self.keys)
        self.found_current = {}
        for v in self.store.list_versions(a.bucket, a.prefix):
            if v.key in wanted and v.is_latest and not v.is_delete_marker:
                self.found_current[v.key] = (v.etag, v.size)
        current = self.store.hash_objects(
            a.bucket, [(k, None) for k in self.keys if k in self.found_current])
        expected = self._expected()
        damaged = [k for k in self.keys
                   if k not in self.found_current or current[k][0] != expected[k][0]]
        if damaged:
            missing = [k for k in damaged if k not in self.found_current]
            detail = ", ".join(f"{k} ({'missing' if k in missing else 'differs'})"
                               for k in damaged[:10])
            more = f" and {len(damaged) - 10} more" if len(damaged) > 10 else ""
            raise Inconclusive(
                f"already damaged before the drill: {len(damaged)} of {len(self.keys)} object(s) "
                f"in s3://{a.bucket}/{a.prefix} do not match the manifest: {detail}{more}; "
                f"nothing was touched - repair the asset (or its manifest) first")
        self.ctx.event("asset.intact", objects=len(self.keys))

    def _require_room(self) -> None:
        """Refuse (INCONCLUSIVE, nothing touched) when the store cannot hold the safety copy
        (every version under the prefix) plus the copy the runbook writes back."""
        a = self.ctx.asset
        safety = sum(v.size for v in self.store.list_versions(a.bucket, a.prefix)
                     if not v.is_delete_marker)
        restored = sum(f.size for f in self.manifest.files)
        space = require_room(self.ctx.inventory, a.store, safety + restored,
                             f"s3://{a.bucket}/{a.prefix} ({safety} B of versions to copy, "
                             f"{restored} B to restore)")
        self.ctx.event("capacity.checked", needed_bytes=safety + restored,
                       free_bytes=space.free_bytes, source=space.source)

    def _prove_versions(self) -> None:
        a = self.ctx.asset
        if not self.store.versioning_enabled(a.bucket):
            raise Inconclusive(f"no restore point: versioning is not enabled on bucket "
                               f"{a.bucket}, so a delete would be permanent")
        # the current versions were hashed against the manifest by _check_intact
        self.ctx.event("restorable.proven", source="bucket-versions", objects=len(self.keys))

    def _prove_backup(self) -> None:
        """The newest snapshot holds the manifest's files: read in full the first time, then
        from restic's content ids plus one file read in full (the kind is in the event)."""
        snap = self._newest_snapshot()
        proof = self._prove(snap, sample=1)
        if not proof.ok:
            first = proof.bad[0]
            raise Inconclusive(f"no restorable copy: {len(proof.bad)} object(s) in restic "
                               f"snapshot {snap.short_id} do not match the manifest (first: "
                               f"{first}: {proof.reasons[first]}); refusing to delete anything")
        self.ctx.event("restorable.proven", source="restic", snapshot=snap.id,
                       snapshot_utc=snap.time.isoformat(), **proof.detail())

    def _require_match(self, got: dict[str, tuple[str | None, int]], what: str) -> None:
        expected = self._expected()
        bad = [k for k in self.keys if got.get(k, (None, 0))[0] != expected[k][0]]
        if bad:
            raise Inconclusive(f"no restorable copy: {len(bad)} object(s) in {what} do not match "
                               f"the manifest (first: {bad[0]}); refusing to delete anything")

    def baseline(self) -> None:
        a = self.ctx.asset
        ep = self.endpoint
        if ep is not None and self.golden is not None:
            self.baseline_outputs = ep.infer(self.golden.inputs)
            if self.golden.outputs is not None and self.baseline_outputs != self.golden.outputs:
                raise Inconclusive("the endpoint's outputs for the golden inputs already differ "
                                   "from the golden file before the fault")
            self.ctx.event("baseline.outputs", rows=len(self.baseline_outputs))
        self.safety = SafetyCopy(self.store, a.bucket, a.prefix, self.ctx.inventory.safety_bucket,
                                 self.ctx.drill_id)
        copied = self.safety.take()
        self.ctx.event("safety.copy.taken", versions=copied,
                       location=f"s3://{self.safety.safety_bucket}/{self.safety.root}")
        self._prove_safety_copy(self.safety)

    def _prove_safety_copy(self, safety: SafetyCopy) -> None:
        """The copy holds what preflight proved: the same current version of every object (the
        target did not change in between) and, read back from the safety bucket, bytes that
        hash to the manifest. Otherwise stop before anything is touched."""
        current: dict[str, FoundVersion] = {}
        for f in safety.found:
            current.setdefault(f.key, f)  # versions are listed newest first
        changed = [k for k in self.keys
                   if k not in current or current[k].is_delete_marker
                   or (current[k].etag, current[k].size) != self.found_current.get(k)]
        if changed:
            raise Inconclusive(
                f"the target changed between preflight and the safety copy: {len(changed)} "
                f"object(s) differ ({', '.join(changed[:5])}); another writer is at work - "
                f"nothing was touched")
        copies = [(k, current[k].safety_key) for k in self.keys]
        got = self.store.hash_objects(safety.safety_bucket,
                                      [(str(dest), None) for _, dest in copies])
        expected = self._expected()
        bad = [k for k, dest in copies if got[str(dest)][0] != expected[k][0]]
        if bad:
            raise Inconclusive(f"the safety copy is not proven: {len(bad)} copied object(s) do "
                               f"not hash to the manifest ({', '.join(bad[:5])}); nothing was "
                               f"touched")
        self.ctx.event("safety.copy.proven", objects=len(copies), method="sha256 of the copies")

    def cleanup(self) -> None:
        if self.safety is not None:
            self.safety.discard()
            self.ctx.event("safety.copy.discarded", reason="the drill ended before inject")

    def inject(self) -> None:
        a = self.ctx.asset
        if self.ctx.variant == "soft":
            for key in self.keys:
                self.store.delete(a.bucket, key)
        else:
            wanted = set(self.keys)
            for v in self.store.list_versions(a.bucket, a.prefix):
                if v.key in wanted:
                    self.store.delete(a.bucket, v.key, v.version_id)
        self.ctx.event("fault.objects.deleted", objects=len(self.keys), variant=self.ctx.variant)

    def detect(self) -> bool:
        a = self.ctx.asset
        return not self.store.exists(a.bucket, a.manifest_key) or any(
            not self.store.exists(a.bucket, k) for k in self.keys)

    # -- runbook ------------------------------------------------------------------------------

    def runbook(self) -> list[RunbookStep]:
        return [
            RunbookStep("locate-restore-point", self.locate, "newest copy that predates the fault"),
            RunbookStep("pull", self.pull, "bring every object back into the store"),
            RunbookStep("verify-sha256", self.verify_sha256, "every object against the manifest"),
            RunbookStep("redeploy", self.redeploy, "the serving node reloads from the store"),
            RunbookStep("smoke-test", self.smoke_test, "golden inputs, outputs bit-identical"),
            RunbookStep("mark-ready", self.mark_ready, "the endpoint takes traffic again"),
        ]

    def locate(self) -> None:
        a = self.ctx.asset
        if not self.from_versions:
            snap = self._newest_snapshot()
            self.snapshot = snap
            self.ctx.findings.restore_point = RestorePoint(
                "restic-snapshot", snap.id, snap.time, self.repo.target.repository)
            return
        self.plan = {}
        by_key: dict[str, list[ObjectVersion]] = {}
        for v in self.store.list_versions(a.bucket, a.prefix):
            by_key.setdefault(v.key, []).append(v)
        bound = self._restore_point_bound()
        for key in self.keys:
            history = by_key.get(key, [])
            markers: list[str] = []
            after_fault = 0
            for i, v in enumerate(history):
                if v.is_delete_marker:
                    markers.append(v.version_id)
                    continue
                if v.last_modified > bound:
                    # written after the fault: not a restore point (and not a write it lost)
                    self.ctx.deviation(f"version {v.version_id} of {key} is dated "
                                       f"{iso(v.last_modified)}, after the fault: not restored")
                    after_fault += 1
                    continue
                lost = tuple(h.last_modified for h in history[:i]
                             if not h.is_delete_marker and h.last_modified <= bound)
                self.plan[key] = VersionPlan(key, v, tuple(markers), len(lost), lost,
                                             after_fault)
                break
            else:
                raise StepFailed(f"no version of {key} made before the fault is left in bucket "
                                 f"{a.bucket}")
        self.set_version_restore_point(self.plan)

    def set_version_restore_point(self, plan: dict[str, VersionPlan]) -> None:
        """Record the restore point a version plan amounts to (also used by custom locators)."""
        a = self.ctx.asset
        manifest_version = plan[a.manifest_key].version
        # a plan that counts newer versions without their times (a custom locator): the window
        # is taken from the chosen version on, which can only overstate it
        lost = [w for p in plan.values()
                for w in (p.lost_writes or ((p.version.last_modified,) if p.newer_versions else ()))]
        # bucket versioning keeps every write: the RPO is the window of writes actually lost
        self.ctx.findings.restore_point = RestorePoint(
            "bucket-version", manifest_version.version_id,
            max(p.version.last_modified for p in plan.values()),
            f"s3://{a.bucket}/{a.prefix}",
            newer_versions_lost=sum(p.newer_versions for p in plan.values()),
            continuous=True, oldest_lost_write=min(lost) if lost else None)

    def pull(self) -> None:
        a = self.ctx.asset
        if not self.from_versions:
            assert self.snapshot is not None
            self.pulled = self._restore_from_backup(self.snapshot, self.keys)
            return
        for p in self.plan.values():
            if p.newer_versions == 0 and p.after_fault == 0:
                # the chosen version is the newest real one: removing the markers above it
                # restores history exactly as it was
                for marker in p.markers_above:
                    self.store.delete(a.bucket, p.key, marker)
            else:
                self.store.copy_version(a.bucket, p.key, p.version.version_id, a.bucket, p.key)

    def verify_sha256(self) -> None:
        a = self.ctx.asset
        if not self.from_versions:
            # hashed while streaming in pull(): no second read
            got: dict[str, tuple[str | None, int]] = dict(getattr(self, "pulled", {}))
        else:
            # pinned to the versions listed now, so verify() can tell whether they changed since
            current = self._current_versions()
            got = self.store.hash_objects(a.bucket, [(k, current.get(k)) for k in self.keys])
            self._hashed_versions = (current, got)
        self._compare(got, "restored")
        if self.from_versions:
            return
        self._start_reread()

    def _compare(self, got: dict[str, tuple[str | None, int]], what: str) -> None:
        expected = self._expected()
        bad = []
        for key in self.keys:
            if not self.ctx.integrity(key, expected[key][0], got.get(key, (None, 0))[0]):
                bad.append(key)
        if bad:
            raise StepFailed(f"{len(bad)} of {len(self.keys)} {what} object(s) do not match the "
                             f"manifest: {', '.join(bad[:3])}")

    def redeploy(self) -> None:
        ep = self.endpoint
        if ep is None:
            self.ctx.event("redeploy.skipped", reason="asset is not served by an endpoint")
            return
        ok, message = ep.load(timeout_s=self.ctx.inventory.step_timeout_s)
        if not ok:
            raise StepFailed(f"the node refused the restored weights: {message}")
        r = ep.wait_ready(self.ctx.inventory.step_timeout_s)
        if not r.ready:
            raise StepFailed(f"the node did not become ready: HTTP {r.status} {r.detail}")

    def _golden_matches(self) -> tuple[int, int]:
        ep = self.endpoint
        assert ep is not None and self.golden is not None and self.baseline_outputs is not None
        got = ep.infer(self.golden.inputs)
        same = sum(1 for x, y in zip(got, self.baseline_outputs, strict=False) if x == y)
        return same, len(self.baseline_outputs)

    def smoke_test(self) -> None:
        if self.endpoint is None or self.baseline_outputs is None:
            self.ctx.event("smoke.skipped", reason="no endpoint or no golden inputs")
            return
        same, total = self._golden_matches()
        if same != total:
            raise StepFailed(f"{total - same} of {total} golden outputs differ from the baseline")

    def mark_ready(self) -> None:
        ep = self.endpoint
        if ep is None:
            return
        r = ep.readiness()
        if not r.ready:
            raise StepFailed(f"endpoint not ready: HTTP {r.status} {r.detail}")
        self.ctx.event("traffic.ready", endpoint=ep.target.url)

    # -- verify and revert ----------------------------------------------------------------------

    def verify(self) -> None:
        got = self._reread_hashes()
        try:
            self._compare(got, "stored")
        except StepFailed as exc:
            self.ctx.fail(f"integrity: {exc}")
        if self.endpoint is None:
            # nothing serves this asset: a smoke test does not apply (no smoke objective), which
            # is not the same as one that could not run
            self.ctx.event("smoke.not-applicable", reason="the asset is not served by an endpoint")
            return
        if self.baseline_outputs is None:
            self.ctx.findings.smoke["golden"] = "not run: no golden inputs for the endpoint"
            return
        same, total = self._golden_matches()
        self.ctx.findings.smoke.update({"golden_inputs": total, "identical_outputs": same,
                                        "endpoint": self.endpoint.target.url})
        if same != total:
            self.ctx.fail(f"golden outputs: {total - same} of {total} differ from the baseline")

    def revert(self) -> None:
        a = self.ctx.asset
        if self.safety is None:
            return
        if not self.safety.matches():
            self.ctx.progress("  store differs from how it was found: putting it back")
            self.safety.restore()
            self.ctx.event("revert.restored-from-safety-copy")
        got = self.store.hash_objects(a.bucket, [(k, None) for k in self.keys])
        bad = [k for k in self.keys if got[k][0] != self._expected()[k][0]]
        if bad:
            raise StepFailed(f"after revert {len(bad)} object(s) still differ from the manifest; "
                             f"safety copy kept at s3://{self.safety.safety_bucket}/"
                             f"{self.safety.root}")
        ep = self.endpoint
        if ep is not None and not (ep.readiness().ready and self._serves_baseline()):
            ok, message = ep.load(timeout_s=self.ctx.inventory.step_timeout_s)
            if not ok or not ep.wait_ready(self.ctx.inventory.step_timeout_s).ready:
                raise StepFailed(f"the node did not come back after revert: {message}")
        self.safety.discard()

    def _serves_baseline(self) -> bool:
        if self.baseline_outputs is None:
            return True
        same, total = self._golden_matches()
        return same == total
