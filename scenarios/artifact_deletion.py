"""Scenario ``artifact-deletion``: a model's weights disappear from the artifact store.

Variants:
  soft   the objects are deleted as ``aws s3 rm`` would on a versioned bucket (delete markers);
         recovery restores the newest real version of each object from bucket history.
  purge  every version of every object is gone; recovery streams each file out of the newest
         restic snapshot on the secondary site that was made before the fault and holds the
         manifest's files, several at once, hashing it on the way (harness/restore.py); the
         preflight proof of that snapshot is cached by restic content id after the first full
         read (harness/proof.py).

Blast radius: the asset's manifest and every file it lists, in the asset's bucket, nothing else.
Verification is independent of the runbook: every object is read back from the store (starting
as soon as verify-sha256 passes, so the re-read overlaps the node's reload; object versions
already read since they became current are not read again) and compared with the manifest taken
before the fault, and the endpoint must answer the golden inputs with outputs bit-identical to
the baseline. Evidence ``sections["loss"]``: the restore point, the RPO, what it lost.
"""

from __future__ import annotations

from typing import ClassVar

from harness.runbook.drills import ObjectRestoreDrill


class ArtifactDeletion(ObjectRestoreDrill):
    name: ClassVar[str] = "artifact-deletion"
    summary: ClassVar[str] = "delete a model's weights from the artifact store and restore them"
    variants: ClassVar[tuple[str, ...]] = ("soft", "purge")
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2)
    blast_radius: ClassVar[str] = "the asset's manifest and the files it lists, in its bucket"
