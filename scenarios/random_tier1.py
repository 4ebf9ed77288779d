"""The quarterly drill: a random Tier 1 asset, a scenario that fits it, end to end, seeded.

``drillbook drill --random-tier1 [--seed N]`` picks, with ``random.Random(seed)``, one Tier 1
asset of the inventory, then one installed scenario (and variant) that applies to that asset's
kind and tier and whose prerequisites the inventory provides (a backup or replication job where
the scenario needs one). The seed and the candidates are recorded in the evidence
(``sections["selection"]``), so the same seed on the same inventory replays the same drill.
"""

from __future__ import annotations

import dataclasses
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError
from harness.inventory import Asset, Inventory
from harness.model import Evidence
from harness.runner import DrillRequest, DrillResult, EvidenceSink, run_drill
from harness.scenario import Scenario, discover


@dataclass(frozen=True)
class Selection:
    seed: int
    asset: str
    scenario: str
    variant: str
    candidates: tuple[str, ...]


def fits(cls: type[Scenario], inventory: Inventory, asset: Asset) -> bool:
    if asset.kind not in cls.asset_kinds or asset.tier not in cls.tiers:
        return False
    check: Callable[[Inventory, Asset], bool] | None = getattr(cls, "applies_to", None)
    return check is None or check(inventory, asset)


def choose(inventory: Inventory, seed: int,
           scenarios: dict[str, type[Scenario]] | None = None) -> Selection:
    found = scenarios if scenarios is not None else discover()
    tier1 = sorted(a for a, asset in inventory.assets.items() if asset.tier == 1)
    if not tier1:
        raise UsageError(f"{inventory.path} has no Tier 1 asset")
    rng = random.Random(seed)
    order = tier1[:]
    rng.shuffle(order)
    for asset_id in order:
        asset = inventory.assets[asset_id]
        names = sorted(n for n, cls in found.items() if fits(cls, inventory, asset))
        if names:
            name = rng.choice(names)
            variant = rng.choice(found[name].variants)
            return Selection(seed, asset_id, name, variant, tuple(names))
    raise UsageError("no installed scenario fits any Tier 1 asset of the inventory")


def run_random_tier1(inventory: Inventory, evidence_root: Path, *, seed: int | None = None,
                     progress: Callable[[str], None] = print,
                     sink: EvidenceSink | None = None) -> tuple[Selection, DrillResult]:
    """Pick and run the drill; ``sink`` (see run_drill) gets the evidence with the selection."""
    seed = secrets.randbelow(2**31) if seed is None else seed
    found = discover()
    sel = choose(inventory, seed, found)
    progress(f"quarterly drill: seed {seed} picked {sel.scenario} ({sel.variant}) on {sel.asset} "
             f"(fitting scenarios: {', '.join(sel.candidates)})")

    def with_selection(ev: Evidence) -> Evidence:
        return ev.replace(sections={**ev.sections, "selection": {
            "mode": "random-tier1", "seed": seed, "asset": sel.asset, "scenario": sel.scenario,
            "variant": sel.variant, "candidates": list(sel.candidates)}})

    def sink_with_selection(ev: Evidence, directory: Path) -> None:
        if sink is not None:
            sink(with_selection(ev), directory)

    result = run_drill(inventory, DrillRequest(found[sel.scenario], sel.variant, sel.asset,
                                               evidence_root), progress=progress,
                       sink=sink_with_selection)
    return sel, dataclasses.replace(result, evidence=with_selection(result.evidence))
