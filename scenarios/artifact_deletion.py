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

from functools import partial
from typing import TYPE_CHECKING, ClassVar

from harness.runbook import objects, serving
from harness.runbook.object_state import ObjectState, Source
from harness.runbook.serving import ServingState
from harness.scenario import RunbookStep, Scenario
from scenarios.datadrills import record_loss

if TYPE_CHECKING:
    from harness.context import DrillContext


class ArtifactDeletion(Scenario):
    name: ClassVar[str] = "artifact-deletion"
    summary: ClassVar[str] = "delete a model's weights from the artifact store and restore them"
    variants: ClassVar[tuple[str, ...]] = ("soft", "purge")
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2)
    destructive: ClassVar[bool] = True
    blast_radius: ClassVar[str] = "the asset's manifest and the files it lists, in its bucket"

    def __init__(self, ctx: DrillContext) -> None:
        super().__init__(ctx)
        self.objects = ObjectState(Source.VERSIONS if ctx.variant == "soft" else Source.BACKUP)
        self.serving = ServingState()

    def preflight(self) -> None:
        objects.read_manifest(self.ctx, self.objects)
        serving.preflight(self.ctx, self.serving)
        objects.preflight(self.ctx, self.objects)

    def baseline(self) -> None:
        serving.record_reference(self.ctx, self.serving)
        objects.take_safety_copy(self.ctx, self.objects)

    def cleanup(self) -> None:
        objects.discard_safety_copy(self.ctx, self.objects, "the drill ended before inject")

    def inject(self) -> None:
        objects.delete_objects(self.ctx, self.objects, every_version=self.ctx.variant == "purge")

    def detect(self) -> bool:
        return objects.objects_missing(self.ctx, self.objects)

    def runbook(self) -> list[RunbookStep]:
        return [*objects.restore_steps(self.ctx, self.objects, partial(record_loss, self.ctx)),
                *serving.steps(self.ctx, self.serving)]

    def verify(self) -> None:
        objects.verify_stored(self.ctx, self.objects)
        serving.verify_outputs(self.ctx, self.serving)

    def revert(self) -> None:
        if objects.put_back(self.ctx, self.objects):
            serving.reload_if_needed(self.ctx, self.serving)
            objects.discard_safety_copy(self.ctx, self.objects, "reverted")
