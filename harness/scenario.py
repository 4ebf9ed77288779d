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

One scenario name may have one implementation per platform: ``gpu-node-loss`` drives node
processes behind HAProxy on a bare-metal site and a Kubernetes cluster through its API. Each
implementation is its own class and entry point (``gpu-node-loss`` and
``gpu-node-loss@kubernetes``) declaring the same ``name`` and its own ``platform``; discovery
groups them under the name as a :class:`ScenarioFamily`, and :func:`resolve` picks the one
implementation for a drill from the asset (the one rule again) and the variant. Every
front-end and the engine resolve through it, so the choice is made once, here.
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
    #: what this implementation drives, when the name has one per platform (harness/scenario.py
    #: resolve); scenarios with a single implementation keep the default
    platform: ClassVar[str] = "any"
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
        if self.platform != "any":
            # a name with one implementation per platform: the evidence says which one ran
            ctx.findings.sections["implementation"] = {
                "scenario": self.name, "platform": self.platform,
                "class": f"{type(self).__module__}:{type(self).__qualname__}"}

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


_BASE_RULE = Scenario.applies_to.__func__  # type: ignore[attr-defined]


class ScenarioFamily(Scenario):
    """A scenario name with one implementation per platform, as discovery groups them. It is
    not a drill (its hooks are abstract, so it cannot be instantiated): :func:`resolve` picks
    the member that drills an asset. Its declarations are its members' together, so code that
    lists or filters scenarios by name keeps working."""

    members: ClassVar[tuple[type[Scenario], ...]] = ()
    platform: ClassVar[str] = "several"

    @classmethod
    def applies_to(cls, inventory: Inventory, asset: Asset) -> bool:
        """One of the implementations applies to the asset."""
        return any(m.applies_to(inventory, asset) for m in cls.members)


def _family(name: str, members: list[type[Scenario]]) -> type[Scenario]:
    def union(values: list[tuple[str, ...]] | list[tuple[int, ...]]) -> tuple[object, ...]:
        return tuple(dict.fromkeys(v for vs in values for v in vs))

    by_platform = "; ".join(f"{m.platform}: {m.summary}" for m in members)
    attrs = {"name": name, "members": tuple(members), "summary": by_platform,
             "variants": union([m.variants for m in members]),
             "asset_kinds": union([m.asset_kinds for m in members]),
             "tiers": union([m.tiers for m in members]),
             "destructive": any(m.destructive for m in members),
             "blast_radius": "; ".join(f"{m.platform}: {m.blast_radius}" for m in members),
             "__module__": __name__, "__doc__": f"{name}, one implementation per platform"}
    return type(f"Family[{name}]", (ScenarioFamily,), attrs)


def members_of(cls: type[Scenario]) -> tuple[type[Scenario], ...]:
    """The implementations behind a discovered scenario (the class itself when it has one)."""
    return cls.members if issubclass(cls, ScenarioFamily) else (cls,)


def why_not(cls: type[Scenario], inventory: Inventory, asset: Asset) -> str | None:
    """None when ``cls`` applies to ``asset``; else why not, in a sentence."""
    if issubclass(cls, ScenarioFamily):
        reasons = [(m.platform, why_not(m, inventory, asset)) for m in cls.members]
        if any(r is None for _, r in reasons):
            return None
        return (f"no implementation of scenario {cls.name!r} applies to asset {asset.id!r}: "
                + "; ".join(f"on {p}, {r}" for p, r in reasons))
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




def _fits(inventory: Inventory, cls: type[Scenario]) -> list[str]:
    return [a.id for a in inventory.assets.values() if cls.applies_to(inventory, a)]


def implementation(inventory: Inventory, cls: type[Scenario], asset_id: str | None,
                   variant: str | None) -> type[Scenario]:
    """The one implementation of ``cls`` that drills ``asset_id`` (the one rule) with
    ``variant``: the asset decides, then the variant (``drain`` exists only on a cluster), then
    which implementations fit any asset of the inventory. A usage error listing the candidates
    when that still leaves more than one."""
    members = members_of(cls)
    if len(members) == 1:
        return members[0]
    cands = list(members)
    if asset_id is not None:
        asset = resolve_asset(inventory, cls, asset_id)  # unknown, or no implementation fits
        cands = [m for m in cands if m.applies_to(inventory, asset)]
    if variant is not None:
        having = [m for m in cands if variant in m.variants]
        if not having:
            where = "" if asset_id is None else f" for asset {asset_id!r}"
            known = "; ".join(f"{m.platform}: {', '.join(m.variants)}" for m in cands)
            raise UsageError(f"scenario {cls.name!r} has no variant {variant!r}{where} "
                             f"(variants: {known})")
        cands = having
    if len(cands) > 1 and asset_id is None:
        cands = [m for m in cands if _fits(inventory, m)] or cands
    if len(cands) == 1:
        return cands[0]
    listed = "; ".join(f"{m.platform}: assets {', '.join(_fits(inventory, m)) or 'none'} "
                       f"(variants {', '.join(m.variants)})" for m in cands)
    raise UsageError(f"scenario {cls.name!r} has one implementation per platform and "
                     f"{len(cands)} fit {inventory.path}: give the asset (--asset, or asset= in "
                     f"the drill marker) to choose one. Candidates: {listed}")


def resolve(inventory: Inventory, cls: type[Scenario], asset_id: str | None,
            variant: str | None) -> tuple[type[Scenario], Asset, str]:
    """What a drill request means: the implementation, the asset and the variant, or a usage
    error saying why not. Every front-end and the engine call this."""
    impl = implementation(inventory, cls, asset_id, variant)
    return impl, resolve_asset(inventory, impl, asset_id), variant_of(impl, variant)


def implementations() -> dict[str, tuple[type[Scenario], ...]]:
    """Every installed scenario implementation, ours and the site's, grouped by scenario name
    (by platform within a name). An entry point is named after its scenario, or
    ``NAME@PLATFORM`` for one of several implementations; anything else fails loudly."""
    found: dict[str, list[type[Scenario]]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        if not (isinstance(cls, type) and issubclass(cls, Scenario)):
            raise UsageError(f"entry point {ep.name!r} ({ep.value}) is not a drillbook Scenario")
        if ep.name not in (cls.name, f"{cls.name}@{cls.platform}"):
            raise UsageError(f"entry point {ep.name!r} ({ep.value}) is scenario {cls.name!r} on "
                             f"platform {cls.platform!r}: name it {cls.name!r}, or "
                             f"{cls.name}@{cls.platform} beside other platforms' implementations")
        same = found.setdefault(cls.name, [])
        clash = [m for m in same if m.platform == cls.platform]
        if clash:
            raise UsageError(f"scenario {cls.name!r} has two implementations for platform "
                             f"{cls.platform!r}: {clash[0].__module__}.{clash[0].__qualname__} "
                             f"and {ep.value}")
        same.append(cls)
    return {n: tuple(sorted(ms, key=lambda m: m.platform)) for n, ms in found.items()}


def discover() -> dict[str, type[Scenario]]:
    """Every installed scenario by name: its class, or a :class:`ScenarioFamily` when the name
    has one implementation per platform."""
    return {n: ms[0] if len(ms) == 1 else _family(n, list(ms))
            for n, ms in implementations().items()}


def get_scenario(name: str) -> type[Scenario]:
    found = discover()
    if name not in found:
        known = ", ".join(sorted(found)) or "(none installed)"
        raise UsageError(f"unknown scenario {name!r}; installed scenarios: {known}")
    return found[name]
