"""One drill session: what every front-end does around the engine, in one place.

The CLI (``drillbook run``, ``drillbook drill --random-tier1``), the pytest plugin (the
``drill`` fixture) and the quarterly drill (scenarios/random_tier1.py) all do the same four
things, through :class:`DrillSession`:

1. resolve the asset: the one given, or the only one the scenario applies to;
2. apply the one rule for which scenario fits which asset (:meth:`Scenario.applies_to`), and
   say why when it does not (kind, tier or the scenario's own reason); for a name with one
   implementation per platform (``gpu-node-loss`` on a process fleet or on a Kubernetes
   cluster) the same rule and the variant pick the implementation
   (:func:`harness.scenario.resolve`), and a choice left open is a usage error listing them;
3. resolve the scenario's parameters: command line > marker > inventory > default
   (harness/params.py), a bad inventory value named by file, line and field;
4. run the drill (:func:`harness.runner.run_drill`) and hand its evidence to a sink while
   signals are held: :class:`EvidenceWriter`, which has ``reports/`` write, render, record and
   seal it (signed when a key is configured).

Anything later (schedules, restore tests) should use it too rather than call run_drill.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness import lease
from harness.context import Progress
from harness.errors import InventoryError, UsageError
from harness.inventory import Asset, Inventory
from harness.journal import Clock
from harness.model import Evidence
from harness.params import Given, ParamError, ParamValues
from harness.params import resolve as resolve_params
from harness.provenance import ExerciseInput
from harness.runner import DrillRequest, DrillResult, StepOverride, run_drill
from harness.scenario import Scenario, discover, get_scenario, members_of, resolve

if TYPE_CHECKING:
    from reports.render import Written

#: a change to the evidence before it is sealed (the quarterly drill adds its selection)
Annotate = Callable[[Evidence], Evidence]


@dataclass(frozen=True)
class DrillPlan:
    """Which drill to run: the scenario, the variant, the asset and the parameters, all
    checked against the inventory."""

    scenario: type[Scenario]
    variant: str
    asset: Asset
    params: ParamValues


@dataclass(frozen=True)
class SessionResult:
    plan: DrillPlan
    drill: DrillResult
    #: what the sink wrote (None without an EvidenceWriter)
    written: Written | None

    @property
    def evidence(self) -> Evidence:
        return self.drill.evidence

    @property
    def directory(self) -> Path:
        return self.drill.directory

    @property
    def interrupted(self) -> bool:
        return self.drill.interrupted


class EvidenceWriter:
    """The evidence sink of every front-end: reports.render.write_evidence writes the JSON,
    renders the reports, records the drill in the history and seals the folder, signed with
    ``key`` when given. run_drill calls it while signals are still held."""

    def __init__(self, key: Path | None = None) -> None:
        self.key = key
        self.written: Written | None = None

    @classmethod
    def for_site(cls, inventory: Inventory, key: Path | str | None = None) -> EvidenceWriter:
        """The key given (option), else $DRILLBOOK_SIGNING_KEY, else the inventory's; a key
        that cannot be loaded is a usage error now, before anything is broken."""
        from harness import signing

        resolved = signing.resolve_key(None if key is None else Path(key),
                                       inventory.evidence.signing_key)
        if resolved is not None:
            signing.load_private_key(resolved)
        return cls(resolved)

    def __call__(self, evidence: Evidence, directory: Path) -> None:
        from reports.render import write_evidence

        self.written = write_evidence(evidence, directory, signing_key=self.key)


def fitting(inventory: Inventory, scenarios: Mapping[str, type[Scenario]] | None = None
            ) -> list[tuple[str, type[Scenario], Asset]]:
    """Every (scenario name, implementation, asset) of the inventory that the one rule allows,
    by name then asset id."""
    found = discover() if scenarios is None else scenarios
    return [(name, impl, asset) for name, cls in sorted(found.items())
            for _, asset in sorted(inventory.assets.items())
            for impl in members_of(cls) if impl.applies_to(inventory, asset)]


def inventory_params(inventory: Inventory, asset: Asset, scenario: str) -> Given | None:
    """The parameters the inventory gives ``scenario`` for ``asset`` (``drills:``)."""
    settings = asset.drill(scenario)
    if settings is None or not settings.params:
        return None
    return Given("inventory", {p.name: p.value for p in settings.params},
                 located={p.name: (inventory.path, p.line, p.field) for p in settings.params})


class DrillSession:
    """Plans and runs drills on one inventory, writing each drill's folder under
    ``evidence_root`` and handing its evidence to ``sink``."""

    def __init__(self, inventory: Inventory, evidence_root: Path, *,
                 sink: Callable[[Evidence, Path], None] | None = None,
                 progress: Progress = print, clock: Clock | None = None,
                 lease_resolver: lease.Resolver | None = None,
                 adapters: Mapping[str, object] | None = None) -> None:
        self.inventory = inventory
        self.evidence_root = evidence_root
        self.sink = sink
        self.progress = progress
        self.clock = clock
        self.lease_resolver = lease_resolver
        self.adapters = adapters

    # -- planning ----------------------------------------------------------------------------

    def plan(self, scenario: str | type[Scenario], *, asset: str | None = None,
             variant: str | None = None, cli_params: Mapping[str, str] | None = None,
             marker_params: Mapping[str, object] | None = None) -> DrillPlan:
        """Check everything a drill needs before anything runs. ``cli_params`` are text
        (``--param k=v``); ``marker_params`` typed values (``@pytest.mark.drill(params=)``)."""
        named = get_scenario(scenario) if isinstance(scenario, str) else scenario
        cls, chosen, variant = resolve(self.inventory, named, asset, variant)
        given = [Given("command line", dict(cli_params or {}), raw=True),
                 Given("marker", dict(marker_params or {}))]
        from_inventory = inventory_params(self.inventory, chosen, cls.name)
        if from_inventory is not None:
            given.append(from_inventory)
        try:
            params = resolve_params(cls.params, given, scenario=f"scenario {cls.name!r}")
        except ParamError as exc:
            if exc.at is not None:
                file, line, field = exc.at
                raise InventoryError(file, line, field, exc.message) from exc
            raise UsageError(exc.message) from exc
        return DrillPlan(cls, variant, chosen, params)

    # -- running -----------------------------------------------------------------------------

    def run(self, plan: DrillPlan, *, exercise: ExerciseInput | None = None,
            dry_run: bool = False, overrides: Mapping[str, StepOverride] | None = None,
            annotate: Annotate | None = None) -> SessionResult:
        """Run the planned drill; the sink gets its evidence (changed by ``annotate`` first)
        while signals are held."""
        change: Annotate = annotate or (lambda ev: ev)

        def seal(evidence: Evidence, directory: Path) -> None:
            if self.sink is not None:
                self.sink(change(evidence), directory)

        if isinstance(self.sink, EvidenceWriter):
            self.sink.written = None  # a writer shared by several runs reports this one's
        req = DrillRequest(plan.scenario, plan.variant, plan.asset.id, self.evidence_root,
                           dry_run=dry_run, exercise=exercise or ExerciseInput(),
                           params=plan.params)
        result = run_drill(self.inventory, req, overrides=overrides or None, clock=self.clock,
                           progress=self.progress, sink=seal,
                           lease_resolver=self.lease_resolver, adapters=self.adapters)
        result = dataclasses.replace(result, evidence=change(result.evidence))
        written = self.sink.written if isinstance(self.sink, EvidenceWriter) else None
        return SessionResult(plan, result, written)

    def run_one(self, scenario: str | type[Scenario], *, asset: str | None = None,
                variant: str | None = None, cli_params: Mapping[str, str] | None = None,
                marker_params: Mapping[str, object] | None = None,
                exercise: ExerciseInput | None = None, dry_run: bool = False,
                overrides: Mapping[str, StepOverride] | None = None) -> SessionResult:
        """:meth:`plan` then :meth:`run`."""
        plan = self.plan(scenario, asset=asset, variant=variant, cli_params=cli_params,
                         marker_params=marker_params)
        return self.run(plan, exercise=exercise, dry_run=dry_run, overrides=overrides)

