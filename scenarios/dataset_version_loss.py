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
from scenarios.datadrills import AssetRestoreDrill


def blob_key(prefix: str, sha256: str) -> str:
    return f"{prefix}objects/{sha256[:2]}/{sha256[2:]}"


class DatasetVersionLoss(AssetRestoreDrill):
    name: ClassVar[str] = "dataset-version-loss"
    summary: ClassVar[str] = "lose a pinned dataset version; restore it exactly, prove by manifest"
    asset_kinds: ClassVar[tuple[str, ...]] = ("dataset",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2, 3)
    blast_radius: ClassVar[str] = ("the pinned version's manifest and every content-addressed "
                                   "file it pins")

    def _expected(self) -> dict[str, tuple[str, int]]:
        a = self.ctx.asset
        out = {blob_key(a.prefix, f.sha256): (f.sha256, f.size) for f in self.manifest.files}
        out[a.manifest_key] = (self.manifest.raw_sha256, -1)
        return out

    def verify(self) -> None:
        super().verify()
        a = self.ctx.asset
        raw = self.store.read_bytes(a.bucket, a.manifest_key)
        restored = None if raw is None else Manifest.from_bytes(raw, source=a.manifest_key)
        same = restored is not None and restored.raw_sha256 == self.manifest.raw_sha256
        got = self.store.hash_objects(a.bucket, [(blob_key(a.prefix, f.sha256), None)
                                                 for f in self.manifest.files])
        files_ok = sum(1 for f in self.manifest.files
                       if got[blob_key(a.prefix, f.sha256)] == (f.sha256, f.size))
        self.ctx.findings.sections["dataset"] = {
            "version_manifest": a.manifest_key, "manifest_sha256": self.manifest.raw_sha256,
            "restored_manifest_sha256": None if restored is None else restored.raw_sha256,
            "files": len(self.manifest.files), "files_matching": files_ok,
            "proven": same and files_ok == len(self.manifest.files)}
        if not same:
            self.ctx.fail("the restored version manifest is not the pinned one "
                          f"({a.manifest_key})")
