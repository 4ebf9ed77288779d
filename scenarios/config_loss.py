"""Scenario ``config-loss``: the pipeline configuration and prompt templates (Tier 2) are lost.

Variants as ``adapter-loss`` (purge: from the scheduled restic backup; soft: from bucket
history). Verification: every file hashes to the manifest taken before the fault, and the
restored pipeline is usable: ``pipeline.yaml`` parses and every prompt template it names is
present in the restored set.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from harness.runbook import object_state, objects, serving
from harness.runbook.object_state import ObjectState, Source
from harness.runbook.serving import ServingState
from harness.scenario import RunbookStep, Scenario
from scenarios.datadrills import record_loss

if TYPE_CHECKING:
    from harness.context import DrillContext


class ConfigLoss(Scenario):
    name: ClassVar[str] = "config-loss"
    summary: ClassVar[str] = "lose pipeline config and prompt templates; restore, prove usable"
    variants: ClassVar[tuple[str, ...]] = ("purge", "soft")
    asset_kinds: ClassVar[tuple[str, ...]] = ("pipeline-config",)
    tiers: ClassVar[tuple[int, ...]] = (2, 3)
    destructive: ClassVar[bool] = True
    blast_radius: ClassVar[str] = "the config's manifest and the files it lists, in its bucket"

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
        self._verify_usable()

    def _verify_usable(self) -> None:
        """pipeline.yaml parses and every prompt template it names is restored."""
        a = self.ctx.asset
        s = object_state.store(self.ctx)
        raw = s.read_bytes(a.bucket, a.prefix + "pipeline.yaml")
        if raw is None:
            self.ctx.fail("pipeline.yaml is missing after recovery")
            return
        try:
            doc: Any = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            self.ctx.fail(f"pipeline.yaml does not parse after recovery: {exc}")
            return
        prompts = doc.get("prompts", {}) if isinstance(doc, dict) else {}
        listed = {f.path for f in self.objects.require_manifest().files}
        missing = [p for p in prompts.values() if p not in listed or
                   not s.exists(a.bucket, a.prefix + p)]
        self.ctx.findings.sections["pipeline"] = {"parsed": True, "prompts": sorted(prompts),
                                                  "missing_templates": missing}
        if missing:
            self.ctx.fail(f"pipeline.yaml names templates that are not restored: {missing}")

    def revert(self) -> None:
        if objects.put_back(self.ctx, self.objects):
            serving.reload_if_needed(self.ctx, self.serving)
            objects.discard_safety_copy(self.ctx, self.objects, "reverted")
