"""The quarterly drill: a random Tier 1 asset, a scenario that fits it, end to end, seeded.

``drillbook drill --random-tier1 [--seed N]`` picks, with ``random.Random(seed)``, one Tier 1
asset of the inventory, then one installed scenario (and variant) that applies to it by the one
rule, :meth:`Scenario.applies_to` (kind, tier, and what the scenario adds: a backup or
replication job where it needs one). The drill runs through the drill session like any other,
so the inventory's parameters for that scenario apply. The seed and the candidates are recorded
in the evidence (``sections["selection"]``), so the same seed on the same inventory replays the
same drill.
"""

from __future__ import annotations

import random
import secrets
from dataclasses import dataclass

from harness.errors import UsageError
from harness.inventory import Inventory
from harness.model import Evidence
from harness.scenario import Scenario, discover, members_of
from harness.session import DrillSession, SessionResult


@dataclass(frozen=True)
class Selection:
    seed: int
    asset: str
    scenario: str
    variant: str
    candidates: tuple[str, ...]
    #: which implementation of the scenario drills the asset ("any": it has only one)
    platform: str = "any"

    def record(self) -> dict[str, object]:
        return {"mode": "random-tier1", "seed": self.seed, "asset": self.asset,
                "scenario": self.scenario, "variant": self.variant, "platform": self.platform,
                "candidates": list(self.candidates)}


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
        names = sorted(n for n, cls in found.items() if cls.applies_to(inventory, asset))
        if names:
            name = rng.choice(names)
            # the implementation for this asset (a name may have one per platform), by the
            # same rule as every front-end; its variants, not another platform's
            impls = [m for m in members_of(found[name]) if m.applies_to(inventory, asset)]
            variant = rng.choice(tuple(dict.fromkeys(v for m in impls for v in m.variants)))
            platform = next(m.platform for m in impls if variant in m.variants)
            return Selection(seed, asset_id, name, variant, tuple(names), platform)
    raise UsageError("no installed scenario fits any Tier 1 asset of the inventory")


def run_random_tier1(session: DrillSession, *, seed: int | None = None,
                     scenarios: dict[str, type[Scenario]] | None = None
                     ) -> tuple[Selection, SessionResult]:
    """Pick and run the drill through ``session``; its sink gets the evidence with the
    selection recorded."""
    seed = secrets.randbelow(2**31) if seed is None else seed
    found = scenarios if scenarios is not None else discover()
    sel = choose(session.inventory, seed, found)
    session.progress(f"quarterly drill: seed {seed} picked {sel.scenario} ({sel.variant}) on "
                     f"{sel.asset} (fitting scenarios: {', '.join(sel.candidates)})")

    def with_selection(ev: Evidence) -> Evidence:
        return ev.replace(sections={**ev.sections, "selection": sel.record()})

    plan = session.plan(found[sel.scenario], asset=sel.asset, variant=sel.variant)
    return sel, session.run(plan, annotate=with_selection)
