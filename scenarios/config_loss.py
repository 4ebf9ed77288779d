"""Scenario ``config-loss``: the pipeline configuration and prompt templates (Tier 2) are lost.

Variants as ``adapter-loss`` (purge: from the scheduled restic backup; soft: from bucket
history). Verification: every file hashes to the manifest taken before the fault, and the
restored pipeline is usable: ``pipeline.yaml`` parses and every prompt template it names is
present in the restored set.
"""

from __future__ import annotations

from typing import Any, ClassVar

import yaml

from harness.runbook import object_state
from harness.runbook.drills import ObjectRestoreDrill


class ConfigLoss(ObjectRestoreDrill):
    name: ClassVar[str] = "config-loss"
    summary: ClassVar[str] = "lose pipeline config and prompt templates; restore, prove usable"
    asset_kinds: ClassVar[tuple[str, ...]] = ("pipeline-config",)
    tiers: ClassVar[tuple[int, ...]] = (2, 3)
    blast_radius: ClassVar[str] = "the config's manifest and the files it lists, in its bucket"

    def verify(self) -> None:
        super().verify()
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
