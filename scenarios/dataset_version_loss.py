"""Scenario ``dataset-version-loss``: a pinned dataset version is lost.

A dataset version is a manifest (path, size, SHA-256 of every file, the way DVC or lakeFS pin a
version) under ``versions/`` and the files it pins, stored content-addressed under
``objects/<sha[:2]>/<sha[2:]>``. The inventory's ``manifest`` names the pinned version (the one
a production model was trained on). Variants:
  purge  every version of that manifest and of every file it pins is gone (files shared with
         other versions included); recovery streams them from the newest verified restic
         snapshot taken before the fault.
  soft   deleted with delete markers; recovery from bucket history.

Proof by manifest: the restored version manifest is byte-identical to the one pinned before the
fault (same SHA-256), and every file it lists is present with that SHA-256 and size.
"""

from __future__ import annotations

from typing import ClassVar

from harness.integrity import Manifest
from harness.runbook import object_state
from harness.runbook.drills import ObjectRestoreDrill
from harness.runbook.object_state import ObjectState, Source, content_addressed


class DatasetVersionLoss(ObjectRestoreDrill):
    name: ClassVar[str] = "dataset-version-loss"
    summary: ClassVar[str] = "lose a pinned dataset version; restore it exactly, prove by manifest"
    asset_kinds: ClassVar[tuple[str, ...]] = ("dataset",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2, 3)
    blast_radius: ClassVar[str] = ("the pinned version's manifest and every content-addressed "
                                   "file it pins")

    def new_object_state(self, source: Source) -> ObjectState:
        return ObjectState(source, key_of=content_addressed)

    def verify(self) -> None:
        super().verify()
        self._verify_pinned()

    def _verify_pinned(self) -> None:
        """The version manifest in the store is byte-identical to the pinned one, and every file
        it pins is there with its SHA-256 and size."""
        a, m = self.ctx.asset, self.objects.require_manifest()
        s = object_state.store(self.ctx)
        raw = s.read_bytes(a.bucket, a.manifest_key)
        restored = None if raw is None else Manifest.from_bytes(raw, source=a.manifest_key)
        same = restored is not None and restored.raw_sha256 == m.raw_sha256
        # the blobs' current versions, as verify_stored just read them (not read again)
        got = object_state.current_hashes(self.ctx, self.objects,
                                          [content_addressed(a.prefix, f) for f in m.files],
                                          "dataset")
        files_ok = sum(1 for f in m.files
                       if got[content_addressed(a.prefix, f)] == (f.sha256, f.size))
        self.ctx.findings.sections["dataset"] = {
            "version_manifest": a.manifest_key, "manifest_sha256": m.raw_sha256,
            "restored_manifest_sha256": None if restored is None else restored.raw_sha256,
            "files": len(m.files), "files_matching": files_ok,
            "proven": same and files_ok == len(m.files)}
        if not same:
            self.ctx.fail(f"the restored version manifest is not the pinned one ({a.manifest_key})")
