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

from typing import ClassVar

from harness.runbook.drills import ObjectRestoreDrill


class AdapterLoss(ObjectRestoreDrill):
    name: ClassVar[str] = "adapter-loss"
    summary: ClassVar[str] = "lose a LoRA adapter from the store; restore it, prove by outputs"
    asset_kinds: ClassVar[tuple[str, ...]] = ("lora-adapter",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2)
    blast_radius: ClassVar[str] = "the adapter's manifest and the files it lists, in its bucket"
