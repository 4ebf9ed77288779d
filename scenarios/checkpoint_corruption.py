"""Scenario ``checkpoint-corruption``: bytes flip inside a weights shard; nothing reports an error.

The shard keeps its size and stays a valid safetensors file (only tensor data bytes change, in
mantissa bits, so every weight stays finite). Variants:
  bitrot  the shard's bytes rot in place: the store's only copy of the current shard is the
          corrupted one (the good version is gone from bucket history), the manifest is
          untouched, and the node keeps serving from memory. Only the integrity scan (every
          object hashed against the manifest) sees it. Recovery: the newest restic snapshot
          made before the fault whose copy hashes to the known-good manifest.
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
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from harness.errors import Inconclusive
from harness.integrity import Manifest
from harness.model import RestorePoint
from harness.runbook import objects, serving
from harness.runbook.object_state import ObjectState, Source, current_hashes, store
from harness.runbook.serving import ServingState
from harness.scenario import RunbookStep, Scenario
from scenarios.datadrills import record_loss

if TYPE_CHECKING:
    from harness.context import DrillContext

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


class CheckpointCorruption(Scenario):
    name: ClassVar[str] = "checkpoint-corruption"
    summary: ClassVar[str] = "flip bytes inside a weights shard; detect by scan or golden outputs"
    variants: ClassVar[tuple[str, ...]] = ("bitrot", "silent")
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2)
    destructive: ClassVar[bool] = True
    blast_radius: ClassVar[str] = "one shard of the asset (and, for silent, its manifest)"

    def __init__(self, ctx: DrillContext) -> None:
        super().__init__(ctx)
        silent = ctx.variant == "silent"
        self.objects = ObjectState(Source.VERSIONS if silent else Source.BACKUP,
                                   verify_versions=silent)
        self.serving = ServingState()
        #: the shard this drill corrupts, chosen in preflight from the drill id
        self.target_key = ""

    def preflight(self) -> None:
        objects.read_manifest(self.ctx, self.objects)
        serving.preflight(self.ctx, self.serving, required_by="checkpoint corruption: golden "
                          "outputs are one of its two detectors")
        shards = sorted(k for k in self.objects.keys if k.endswith(".safetensors"))
        if not shards:
            raise Inconclusive("the manifest lists no .safetensors shard to corrupt")
        # a different shard each drill, chosen from the drill id (recorded in the journal)
        self.target_key = shards[int(self.ctx.drill_id[-6:], 16) % len(shards)]
        objects.preflight(self.ctx, self.objects)

    def baseline(self) -> None:
        serving.record_reference(self.ctx, self.serving)
        objects.take_safety_copy(self.ctx, self.objects)

    def cleanup(self) -> None:
        objects.discard_safety_copy(self.ctx, self.objects, "the drill ended before inject")

    # -- inject and detect --------------------------------------------------------------------

    def inject(self) -> None:
        a, s = self.ctx.asset, store(self.ctx)
        good = s.read_bytes(a.bucket, self.target_key)
        if good is None:
            raise Inconclusive(f"{self.target_key} vanished before the fault")
        bad, offsets = corrupt_safetensors(good)
        before = [v for v in s.list_versions(a.bucket, self.target_key)
                  if v.key == self.target_key and v.is_latest]
        s.put_bytes(a.bucket, self.target_key, bad)
        if self.ctx.variant == "bitrot":
            # rot in place: the good bytes exist nowhere in the store any more
            for v in before:
                s.delete(a.bucket, v.key, v.version_id)
        else:
            doc = self.objects.require_manifest().to_json()
            rel = self.target_key[len(a.prefix):]
            for f in doc["files"]:
                if f["path"] == rel:
                    f["sha256"] = hashlib.sha256(bad).hexdigest()
            s.put_bytes(a.bucket, a.manifest_key, json.dumps(doc, indent=2).encode())
        self.ctx.event("fault.shard.corrupted", key=self.target_key, bytes_flipped=len(offsets),
                       size=len(bad), same_size=len(bad) == len(good),
                       first_offset=offsets[0], variant=self.ctx.variant)
        ep = serving.endpoint(self.ctx)
        if self.ctx.variant == "silent" and ep is not None:
            # a rollout: the node pulls the published checkpoint and verifies it against the
            # published manifest, which matches, so it loads and serves
            ok, message = ep.load(timeout_s=self.ctx.inventory.step_timeout_s)
            self.ctx.event("fault.rollout", loaded=ok, message=message[:200])

    def detect(self) -> bool:
        """The integrity scan against the store's own manifest, and the golden outputs. Every
        object read here is remembered by version, so the runbook's scan reads none again."""
        a = self.ctx.asset
        raw = store(self.ctx).read_bytes(a.bucket, a.manifest_key)
        published = None if raw is None else Manifest.from_bytes(raw)
        if published is None:
            scan = list(self.objects.keys)
        else:
            want = {self.objects.key_of(a.prefix, f): f.sha256 for f in published.files}
            got = current_hashes(self.ctx, self.objects, [*want, a.manifest_key], "detect")
            scan = sorted(k for k, sha in want.items() if got[k][0] != sha)
        ep = serving.endpoint(self.ctx)
        ready = ep is not None and ep.readiness().ready
        match = serving.answers(self.ctx, self.serving) if ready else None
        differ = match is not None and not match.ok
        if scan or differ:
            self.ctx.findings.sections["corruption"] = {
                "variant": self.ctx.variant, "shard": self.target_key,
                "scan_against_store_manifest": scan,
                "node_ready": ready, "golden_identical": match.same if match else 0,
                "golden_total": match.total if match else 0,
                "detected_by": "integrity-scan" if scan else "golden-outputs",
                "errors_anywhere": not ready,
            }
        return bool(scan) or differ

    # -- runbook, verify, revert ----------------------------------------------------------------

    def runbook(self) -> list[RunbookStep]:
        def loss(point: RestorePoint, lost: list[tuple[str, datetime]]) -> None:
            # only the repaired objects are replaced: only they can lose newer writes
            record_loss(self.ctx, point, lost, corrupted_objects=len(self.objects.targets))

        return [objects.integrity_scan(self.ctx, self.objects),
                *objects.restore_steps(self.ctx, self.objects, loss),
                *serving.steps(self.ctx, self.serving)]

    def verify(self) -> None:
        objects.verify_stored(self.ctx, self.objects)
        serving.verify_outputs(self.ctx, self.serving)

    def revert(self) -> None:
        if objects.put_back(self.ctx, self.objects):
            serving.reload_if_needed(self.ctx, self.serving)
            objects.discard_safety_copy(self.ctx, self.objects, "reverted")
