"""Scenario ``adapter-loss``: a fine-tuned LoRA adapter disappears from the artifact store.

The serving node keeps answering from the copy it loaded, so nothing fails until the next
rollout; the loss is seen by the store probe. Variants:
  purge  every version of the adapter's files is gone; recovery streams them out of the newest
         scheduled restic snapshot taken before the fault and whose files hash to the manifest.
  soft   the files are deleted as ``aws s3 rm`` would (delete markers); recovery from history.

Verification: every adapter file hashes to the manifest taken before the fault, and the node,
after reloading the adapter from the store, answers the adapter's golden inputs bit-identically.
Evidence: restore point, RPO, and the adapter versions newer than the restore point (lost).
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


class AdapterLoss(Scenario):
    name: ClassVar[str] = "adapter-loss"
    summary: ClassVar[str] = "lose a LoRA adapter from the store; restore it, prove by outputs"
    variants: ClassVar[tuple[str, ...]] = ("purge", "soft")
    asset_kinds: ClassVar[tuple[str, ...]] = ("lora-adapter",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2)
    destructive: ClassVar[bool] = True
    blast_radius: ClassVar[str] = "the adapter's manifest and the files it lists, in its bucket"

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
