"""Drill templates: the wiring of a whole drill out of runbook steps, for a family of scenarios
that differ only in what they declare.

:class:`ObjectRestoreDrill` is the artifact-deletion family: objects listed by a manifest are
deleted (``soft``: delete markers; ``purge``: every version), restored from bucket history or
from the newest good restic snapshot, verified by SHA-256 and, where the asset is served, by the
endpoint's golden outputs. A scenario in the family sets its name, summary, kinds and tiers, and
adds checks by overriding :meth:`~ObjectRestoreDrill.verify` (calling ``super().verify()``).
It is a template, not a scenario: it has no name and is registered nowhere.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, ClassVar

from harness.runbook import objects, serving
from harness.runbook.jobs import record_loss
from harness.runbook.object_state import ObjectState, Source
from harness.runbook.serving import ServingState
from harness.scenario import RunbookStep, Scenario

if TYPE_CHECKING:
    from harness.context import DrillContext


class ObjectRestoreDrill(Scenario):
    variants: ClassVar[tuple[str, ...]] = ("purge", "soft")
    destructive: ClassVar[bool] = True

    def __init__(self, ctx: DrillContext) -> None:
        super().__init__(ctx)
        self.objects = self.new_object_state(
            Source.VERSIONS if ctx.variant == "soft" else Source.BACKUP)
        self.serving = ServingState()

    def new_object_state(self, source: Source) -> ObjectState:
        """The per-drill state of the objects; override to map manifest entries to other keys."""
        return ObjectState(source)

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
