"""What a scenario is, and how scenarios are found.

A scenario module declares one fault: its tier and asset kinds, whether it is destructive, its
variants, its parameters, and the hooks the runner calls in order (preflight, baseline, inject,
detect, the runbook's steps, verify, revert). Scenarios are found through the
``drillbook.scenarios`` entry-point group, so a site's own faults sit beside ours without
editing drillbook.

Which scenario fits which asset is decided in one place, :meth:`Scenario.applies_to`: the asset's
kind is in ``asset_kinds`` and its tier in ``tiers``, and a scenario that needs more (a backup
job for the asset, say) overrides it and calls ``super()``. Every front-end (the CLI, the pytest
plugin, the quarterly drill) and the engine ask it, and :func:`why_not` says why it said no.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, ClassVar

from harness.blast import Touch
from harness.errors import UsageError
from harness.params import Param

if TYPE_CHECKING:
    from harness.context import DrillContext
    from harness.inventory import Asset, Inventory

ENTRY_POINT_GROUP = "drillbook.scenarios"

StepFn = Callable[[], None]


@dataclass(frozen=True)
class RunbookStep:
    """A named, timed recovery step. It returns normally when done, raises StepFailed when its
    check says no, and Inconclusive (or anything else) when it could not run."""

    name: str
    run: StepFn
    summary: str = ""


class Scenario(abc.ABC):
    name: ClassVar[str]
    summary: ClassVar[str]
    variants: ClassVar[tuple[str, ...]]
    asset_kinds: ClassVar[tuple[str, ...]]
    tiers: ClassVar[tuple[int, ...]] = (1, 2, 3)
    destructive: ClassVar[bool] = True
    blast_radius: ClassVar[str] = ""
    #: what a drill of this scenario can be told (harness/params.py); read from ``ctx.params``
    params: ClassVar[tuple[Param, ...]] = ()

    @classmethod
    def applies_to(cls, inventory: Inventory, asset: Asset) -> bool:
        """Whether this scenario can drill ``asset``: its kind and tier are declared here.
        Override to add a prerequisite, as ``super().applies_to(inventory, asset) and ...``;
        the override's docstring is the reason given when it says no."""
        return asset.kind in cls.asset_kinds and asset.tier in cls.tiers

    def __init__(self, ctx: DrillContext) -> None:
        self.ctx = ctx

    def touches(self) -> list[Touch]:
        """Every resource this drill may change: its declared blast radius. The runner checks
        each target is drill-safe, leases each resource and fences the adapters to them.

        The default is the asset's own data: its database on its store, or its bucket prefix.
        Override it when the fault, the runbook or revert changes anything else (a node, a job,
        an account, a load-balancer pool, a replica bucket)."""
        a = self.ctx.asset
        if a.database is not None:
            return [Touch.database(a.store, a.database)]
        return [Touch.s3(a.store, a.bucket, a.prefix)]

    def scratch_touches(self) -> list[Touch]:
        """Places only this drill creates and removes (canaries, proof databases), holding no
        asset's data: writes there are allowed, but they are not leased and their targets need
        not be drill-safe. Name them with the drill id where possible."""
        return []

    @abc.abstractmethod
    def preflight(self) -> None:
        """Prove the drill can run and can be undone; raise Inconclusive otherwise."""

    @abc.abstractmethod
    def baseline(self) -> None:
        """Record the state to compare against after recovery."""

    @abc.abstractmethod
    def inject(self) -> None:
        """Cause the fault."""

    @abc.abstractmethod
    def detect(self) -> bool:
        """One probe: True once the fault is observable from outside."""

    @abc.abstractmethod
    def runbook(self) -> list[RunbookStep]:
        """The recovery, in order."""

    @abc.abstractmethod
    def verify(self) -> None:
        """Independent checks that the asset is really back; failures go to ctx.fail()."""

    @abc.abstractmethod
    def revert(self) -> None:
        """Leave the target as it was found, whatever happened before."""

    def cleanup(self) -> None:
        """The drill ended before inject (a dry run, a refusal, an abort): nothing was broken,
        so only remove what preflight and baseline made (safety copies, scratch files). Never
        restore anything here."""


def why_not(cls: type[Scenario], inventory: Inventory, asset: Asset) -> str | None:
    """None when ``cls`` applies to ``asset``; else why not, in a sentence."""
    if asset.kind not in cls.asset_kinds:
        return (f"scenario {cls.name!r} applies to assets of kind {', '.join(cls.asset_kinds)}, "
                f"not to asset {asset.id!r} of kind {asset.kind!r}")
    if asset.tier not in cls.tiers:
        tiers = ", ".join(str(t) for t in cls.tiers)
        return (f"scenario {cls.name!r} applies to tier {tiers} assets, not to asset "
                f"{asset.id!r} of tier {asset.tier}")
    if cls.applies_to(inventory, asset):
        return None
    rule = cls.applies_to.__func__  # type: ignore[attr-defined]
    doc = (rule.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    own = f": {' '.join(doc.split())}" if doc and rule is not _BASE_RULE else ""
    return (f"scenario {cls.name!r} does not apply to asset {asset.id!r} by its own rule "
            f"({rule.__qualname__}){own}")


_BASE_RULE = Scenario.applies_to.__func__  # type: ignore[attr-defined]


def resolve_asset(inventory: Inventory, cls: type[Scenario], asset_id: str | None) -> Asset:
    """The asset named, if the scenario applies to it; else the only one it applies to. A
    usage error saying why otherwise."""
    if asset_id is None:
        fits = [a for a in inventory.assets.values() if cls.applies_to(inventory, a)]
        if len(fits) != 1:
            names = ", ".join(a.id for a in fits) or "none"
            raise UsageError(f"give the asset (--asset, or asset= in the drill marker): "
                             f"{len(fits)} assets of {inventory.path} fit {cls.name} ({names})")
        return fits[0]
    if asset_id not in inventory.assets:
        raise UsageError(f"asset {asset_id!r} is not in {inventory.path} "
                         f"(assets: {', '.join(inventory.assets)})")
    asset = inventory.assets[asset_id]
    reason = why_not(cls, inventory, asset)
    if reason is not None:
        raise UsageError(reason)
    return asset


def variant_of(cls: type[Scenario], variant: str | None) -> str:
    """The variant asked for (the scenario's first when None), if the scenario has it."""
    chosen = variant or cls.variants[0]
    if chosen not in cls.variants:
        raise UsageError(f"scenario {cls.name!r} has no variant {chosen!r} "
                         f"(variants: {', '.join(cls.variants)})")
    return chosen


def discover() -> dict[str, type[Scenario]]:
    """Every installed scenario by name, ours and the site's."""
    found: dict[str, type[Scenario]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Scenario)):
            raise UsageError(f"entry point {ep.name!r} ({ep.value}) is not a drillbook Scenario")
        found[ep.name] = cls
    return found


def get_scenario(name: str) -> type[Scenario]:
    found = discover()
    if name not in found:
        known = ", ".join(sorted(found)) or "(none installed)"
        raise UsageError(f"unknown scenario {name!r}; installed scenarios: {known}")
    return found[name]
