"""Scenario ``checkpoint-corruption``: bytes flip inside a weights shard; nothing reports an error.

The shard keeps its size and stays a valid safetensors file (only tensor data bytes change, in
mantissa bits, so every weight stays finite). Variants:
  bitrot  the shard's bytes rot in place: the store's only copy of the current shard is the
          corrupted one (the good version is gone from bucket history), the manifest is
          untouched, and the node keeps serving from memory. Only the integrity scan (every
          object hashed against the manifest) sees it. Recovery: the newest restic snapshot
          taken before detection whose copy hashes to the known-good manifest.
  silent  a corrupted checkpoint is published *with a manifest that matches it* (the corruption
          happened before the manifest was made) and a rollout reloads the node, which verifies
          the manifest, loads, and serves wrong answers with no error anywhere. The integrity scan
          against the store's manifest is clean; only the golden outputs see it. Recovery: the
          newest version in bucket history of each object that hashes to the known-good manifest
          (the one recorded before the fault).

Verification: every shard (and the manifest) hashes to the known-good manifest, and the node,
reloaded from the store, answers the golden inputs bit-identically to the baseline.
"""

from __future__ import annotations

import hashlib
import json
import struct
from typing import ClassVar

from harness.errors import Inconclusive, StepFailed
from harness.integrity import Manifest
from harness.model import RestorePoint
from harness.scenario import RunbookStep
from harness.targets.s3 import ObjectVersion
from scenarios.artifact_deletion import VersionPlan
from scenarios.datadrills import AssetRestoreDrill, record_loss

#: bytes flipped in the shard, spread over its tensor data
FLIPS = 16


def corrupt_safetensors(data: bytes, flips: int = FLIPS) -> tuple[bytes, list[int]]:
    """Flip a mantissa bit in ``flips`` float32 values spread over the tensor data; the header
    (and so the file's structure and size) is left alone. Returns (bytes, offsets flipped)."""
    (header_len,) = struct.unpack("<Q", data[:8])
    start = 8 + header_len
    n_floats = (len(data) - start) // 4
    if n_floats < flips:
        raise Inconclusive("shard too small to corrupt")
    out = bytearray(data)
    offsets = []
    for i in range(flips):
        # byte 2 of a little-endian float32 holds mantissa bits 16-22: the value changes by a
        # few percent at most and stays finite, so nothing downstream raises
        off = start + 4 * ((i * n_floats) // flips) + 2
        out[off] ^= 0x20
        offsets.append(off)
    return bytes(out), offsets


class CheckpointCorruption(AssetRestoreDrill):
    name: ClassVar[str] = "checkpoint-corruption"
    summary: ClassVar[str] = "flip bytes inside a weights shard; detect by scan or golden outputs"
    variants: ClassVar[tuple[str, ...]] = ("bitrot", "silent")
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2)
    blast_radius: ClassVar[str] = "one shard of the asset (and, for silent, its manifest)"

    target_key: str = ""
    corrupted: list[str]
    good_plan: dict[str, VersionPlan] | None = None
    #: the last integrity scan: key -> (version id hashed, sha256); pinned to version ids so a
    #: later step can tell whether what it saw is still what the store holds
    scanned: dict[str, tuple[str, str | None]] | None = None

    @property
    def from_versions(self) -> bool:
        return self.ctx.variant == "silent"

    def preflight(self) -> None:
        super().preflight()
        if self.endpoint is None or self.golden is None:
            raise Inconclusive("checkpoint corruption needs a serving endpoint and golden inputs: "
                               "golden outputs are one of its two detectors")
        shards = sorted(k for k in self.keys if k.endswith(".safetensors"))
        if not shards:
            raise Inconclusive("the manifest lists no .safetensors shard to corrupt")
        # a different shard each drill, chosen from the drill id (recorded in the journal)
        self.target_key = shards[int(self.ctx.drill_id[-6:], 16) % len(shards)]

    # -- inject and detect --------------------------------------------------------------------

    def inject(self) -> None:
        a = self.ctx.asset
        good = self.store.read_bytes(a.bucket, self.target_key)
        if good is None:
            raise Inconclusive(f"{self.target_key} vanished before the fault")
        bad, offsets = corrupt_safetensors(good)
        before = [v for v in self.store.list_versions(a.bucket, self.target_key)
                  if v.key == self.target_key and v.is_latest]
        self.store.put_bytes(a.bucket, self.target_key, bad)
        if self.ctx.variant == "bitrot":
            # rot in place: the good bytes exist nowhere in the store any more
            for v in before:
                self.store.delete(a.bucket, v.key, v.version_id)
        else:
            doc = self.manifest.to_json()
            rel = self.target_key[len(a.prefix):]
            for f in doc["files"]:
                if f["path"] == rel:
                    f["sha256"] = hashlib.sha256(bad).hexdigest()
            self.store.put_bytes(a.bucket, a.manifest_key, json.dumps(doc, indent=2).encode())
        self.ctx.event("fault.shard.corrupted", key=self.target_key, bytes_flipped=len(offsets),
                       size=len(bad), same_size=len(bad) == len(good),
                       first_offset=offsets[0], variant=self.ctx.variant)
        if self.ctx.variant == "silent" and self.endpoint is not None:
            # a rollout: the node pulls the published checkpoint and verifies it against the
            # published manifest, which matches, so it loads and serves
            ok, message = self.endpoint.load(timeout_s=self.ctx.inventory.step_timeout_s)
            self.ctx.event("fault.rollout", loaded=ok, message=message[:200])

    def _versions_of(self, keys: list[str]) -> dict[str, str]:
        """The current version id of each key that has one."""
        a = self.ctx.asset
        wanted = set(keys)
        return {v.key: v.version_id for v in self.store.list_versions(a.bucket, a.prefix)
                if v.key in wanted and v.is_latest and not v.is_delete_marker}

    def _scan(self, against: Manifest) -> list[str]:
        """Objects whose SHA-256 differs from ``against`` (the integrity scan: every object read
        once, each pinned to the version listed just before)."""
        a = self.ctx.asset
        expected = {a.prefix + f.path: f.sha256 for f in against.files}
        keys = [*expected, a.manifest_key]  # the manifest too: scan_step compares it
        versions = self._versions_of(keys)
        got = self.store.hash_objects(a.bucket, [(k, versions.get(k)) for k in keys])
        self.scanned = {k: (versions.get(k, ""), got[k][0]) for k in keys}
        return sorted(k for k, sha in expected.items() if got[k][0] != sha)

    def _still_scanned(self, keys: list[str]) -> dict[str, str | None] | None:
        """The last scan's hashes of ``keys`` if every one of them is still the version that
        scan read; None if any changed (or there was no scan)."""
        if self.scanned is None or any(k not in self.scanned for k in keys):
            return None
        now = self._versions_of(keys)
        if any(self.scanned[k][0] != now.get(k) for k in keys):
            return None
        return {k: self.scanned[k][1] for k in keys}

    def detect(self) -> bool:
        a = self.ctx.asset
        raw = self.store.read_bytes(a.bucket, a.manifest_key)
        store_manifest = None if raw is None else Manifest.from_bytes(raw)
        scan = self._scan(store_manifest) if store_manifest is not None else self.keys
        ready = self.endpoint.readiness().ready if self.endpoint is not None else False
        same, total = self._golden_matches() if ready else (0, 0)
        found = bool(scan) or (ready and same != total)
        if found:
            self.ctx.findings.sections["corruption"] = {
                "variant": self.ctx.variant, "shard": self.target_key,
                "scan_against_store_manifest": scan,
                "node_ready": ready, "golden_identical": same, "golden_total": total,
                "detected_by": "integrity-scan" if scan else "golden-outputs",
                "errors_anywhere": not ready,
            }
        return found

    # -- runbook -----------------------------------------------------------------------------

    def runbook(self) -> list[RunbookStep]:
        return [
            RunbookStep("integrity-scan", self.scan_step, "hash every object against the "
                        "known-good manifest"),
            *super().runbook(),
        ]

    def scan_step(self) -> None:
        a = self.ctx.asset
        seen = self._still_scanned(self.keys)
        if seen is None:
            self.corrupted = self._scan(self.manifest)
            seen = self._still_scanned(self.keys) or {}
        else:
            # detection already read every object, and none has changed since: no second trip
            self.corrupted = sorted(a.prefix + f.path for f in self.manifest.files
                                    if seen[a.prefix + f.path] != f.sha256)
            self.ctx.event("integrity.scan.reused", objects=len(self.keys),
                           reason="every object is still the version detection hashed")
        stored_manifest = seen.get(a.manifest_key) or self._stored_manifest_sha()
        if self.manifest.raw_sha256 != stored_manifest:
            self.corrupted.append(a.manifest_key)
        if not self.corrupted:
            raise StepFailed("the scan finds nothing to repair")
        self.ctx.event("integrity.scan.done", corrupted=len(self.corrupted),
                       first=self.corrupted[0])

    def _stored_manifest_sha(self) -> str | None:
        a = self.ctx.asset
        return self.store.hash_object(a.bucket, a.manifest_key)[0]

    def locate(self) -> None:
        a = self.ctx.asset
        expected = self._expected()
        if self.from_versions:
            plan: dict[str, VersionPlan] = {}
            history: dict[str, list[ObjectVersion]] = {}
            for v in self.store.list_versions(a.bucket, a.prefix):
                history.setdefault(v.key, []).append(v)
            at_baseline = {v.key: v.version_id for v in self.baseline_versions}
            for key in self.corrupted:
                real = [v for v in history.get(key, []) if not v.is_delete_marker]
                # the version current at baseline first: it is the likeliest good one, so
                # usually only one version is read
                order = sorted(range(len(real)),
                               key=lambda i: (real[i].version_id != at_baseline.get(key), i))
                for newer in order:
                    v = real[newer]
                    if self.store.hash_object(a.bucket, key, v.version_id)[0] == expected[key][0]:
                        plan[key] = VersionPlan(key, v, (), newer)
                        break
                else:
                    raise StepFailed(f"no version of {key} in bucket history matches the "
                                     f"known-good manifest")
            self.good_plan = plan
            newest = max(plan.values(), key=lambda p: p.version.last_modified)
            self.ctx.findings.restore_point = RestorePoint(
                "bucket-version", newest.version.version_id,
                newest.version.last_modified, f"s3://{a.bucket}/{a.prefix}",
                newer_versions_lost=sum(p.newer_versions for p in plan.values()))
        else:
            snap = self._newest_snapshot()
            self.snapshot = snap
            self.ctx.findings.restore_point = RestorePoint(
                "restic-snapshot", snap.id, snap.time, self.repo.target.repository)
        point = self.ctx.findings.restore_point
        assert point is not None
        # only the repaired objects are replaced: only they can lose newer writes
        record_loss(self.ctx, point, [(v.key, v.last_modified) for v in self.baseline_versions
                                      if v.key in self.corrupted],
                    corrupted_objects=len(self.corrupted))

    def pull(self) -> None:
        a = self.ctx.asset
        if self.good_plan is not None:
            for p in self.good_plan.values():
                self.store.copy_version(a.bucket, p.key, p.version.version_id, a.bucket, p.key)
            return
        assert self.snapshot is not None
        # only the damaged objects, streamed out of the backup and hashed on the way
        self.pulled = self._restore_from_backup(self.snapshot, self.corrupted)

    def verify_sha256(self) -> None:
        """The repaired objects from what pull hashed (or, for server-side copies, read now);
        the others from the scan, as long as each is still the version the scan read."""
        a = self.ctx.asset
        repaired = list(self.corrupted)
        if self.good_plan is not None:
            got = self.store.hash_objects(a.bucket, [(k, None) for k in repaired])
        else:
            got = {k: v for k, v in getattr(self, "pulled", {}).items() if k in repaired}
        untouched = [k for k in self.keys if k not in repaired]
        seen = self._still_scanned(untouched)
        if seen is None:
            got.update(self.store.hash_objects(a.bucket, [(k, None) for k in untouched]))
        else:
            got.update({k: (sha, -1) for k, sha in seen.items()})
        self._compare(got, "repaired")
        self._start_reread()
