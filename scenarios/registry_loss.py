"""Scenario ``registry-loss``: the model registry's database is destroyed; it comes back from the
newest pg_dump, and the registry (MLflow) serves the same models again.

Everything a database drill does (harness/runbook/database.py: prove the newest dump restores
before dropping anything, safety copy, exact restore of the newest restore point, row-level loss
accounting, revert), plus the registry as its users see it: before the fault the registry's API
view is recorded (registered models, versions, stages, aliases, model and version tags, the
metrics of each version's run); after the restore the registry must answer again, and its view is
compared with the baseline entry by entry. Entries in the baseline that did not come back are the
registry changes lost (the RPO, counted); a model version created before the restore point that
did not come back, or an entry that was never in the baseline, is a FAIL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from harness.blast import Touch
from harness.errors import Inconclusive, StepFailed, TargetUnreachable
from harness.runbook import database as db
from harness.scenario import RunbookStep, Scenario
from harness.targets.database import DumpRecord
from harness.targets.protocols import RegistryAPI
from harness.targets.registry import RegistryError

if TYPE_CHECKING:
    from harness.context import DrillContext


@dataclass
class RegistryState(db.DbState):
    #: the registry's API view at baseline, one entry per fact
    base_view: set[str] = field(default_factory=set)
    #: version reference ("name/version") -> creation time, from the baseline
    version_created: dict[str, datetime] = field(default_factory=dict)


class RegistryLoss(Scenario):
    name: ClassVar[str] = "registry-loss"
    summary: ClassVar[str] = ("destroy the model registry's database, restore it from the newest "
                              "pg_dump; verify models, versions, stages, aliases, tags, metrics")
    variants: ClassVar[tuple[str, ...]] = ("drop",)
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-registry",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2, 3)
    destructive: ClassVar[bool] = True
    blast_radius: ClassVar[str] = ("the registry's database on its PostgreSQL server; the "
                                   "registry server itself and its artifact store are untouched")

    def __init__(self, ctx: DrillContext) -> None:
        super().__init__(ctx)
        self.state = RegistryState()

    @property
    def registry(self) -> RegistryAPI:
        a = self.ctx.asset
        assert a.served_by is not None  # the inventory requires it for model registries
        return self.ctx.adapters.mlflow(a.served_by)

    def scratch_touches(self) -> list[Touch]:
        return db.proof_touches(self.ctx)

    def preflight(self) -> None:
        self.registry.ping()
        db.require_database(self.ctx, self.state)

    def baseline(self) -> None:
        db.take_safety_copy(self.ctx, self.state)
        s = self.state
        s.base_view = self.registry.view()
        if not s.base_view:
            raise Inconclusive(f"registry {self.registry.target.url} holds no registered model: "
                               f"nothing to compare after a restore")
        for m in self.registry.registered_models():
            for v in self.registry.versions(m.name):
                s.version_created[f"{m.name}/{v.version}"] = datetime.fromtimestamp(
                    v.created_ms / 1000, UTC)
        self.ctx.event("baseline.registry", entries=len(s.base_view),
                       versions=len(s.version_created))

    def cleanup(self) -> None:
        db.discard_safety_copy(self.ctx, self.state)

    def inject(self) -> None:
        db.drop_database(self.ctx)

    def detect(self) -> bool:
        # seen from the outside, as a user would: the registry no longer answers a search
        try:
            self.registry.ping()
        except (RegistryError, TargetUnreachable):
            return True
        return False

    def runbook(self) -> list[RunbookStep]:
        timeout = self.ctx.inventory.step_timeout_s
        return db.restore_steps(self.ctx, self.state) + [
            db.wait_for_service("reconnect-registry",
                                "the registry server answers from the restored database",
                                lambda: self.registry.wait_ready(timeout), "the registry"),
            RunbookStep("smoke-test", self.smoke_test, "every alias resolves to a version"),
        ]

    def smoke_test(self) -> None:
        models = self.registry.registered_models()
        if not models:
            raise StepFailed("the registry answers but lists no registered model")
        for m in models:
            versions = {v.version for v in self.registry.versions(m.name)}
            for alias, version in m.aliases.items():
                if version not in versions:
                    raise StepFailed(f"alias {m.name}@{alias} points at version {version}, "
                                     f"which the registry does not list")
        # "passed" makes it a judged smoke objective (without it the objective list reads "did
        # not run", which is never a pass)
        self.ctx.findings.smoke.update({"registered_models": len(models),
                                        "registry": self.registry.target.url, "passed": True,
                                        "summary": f"{len(models)} registered model(s) answer; "
                                                   f"every alias resolves to a listed version"})

    def verify(self) -> None:
        db.verify_newest_restored(self.ctx, self.state, self.explain_loss)

    def explain_loss(self, rec: DumpRecord, tables: dict[str, db.TableLoss]) -> dict[str, Any]:
        """The registry as its users see it, against the baseline."""
        try:
            view = self.registry.view()
        except (RegistryError, TargetUnreachable) as exc:
            self.ctx.fail(f"the registry cannot be read after recovery: {exc}")
            return {"registry_changes_lost": None}
        base = self.state.base_view
        lost, unknown = sorted(base - view), sorted(view - base)
        missing_old = sorted(
            ref for ref, created in self.state.version_created.items()
            if created <= rec.created and not any(e.startswith(f"version {ref} ") for e in view))
        if missing_old:
            self.ctx.fail(f"model version(s) created before the restore point are missing: "
                          f"{', '.join(missing_old[:5])}")
        if unknown:
            self.ctx.fail(f"{len(unknown)} registry entr(y/ies) after recovery were never in the "
                          f"baseline: {', '.join(unknown[:3])}")
        by_kind: dict[str, int] = {}
        for entry in lost:
            kind = entry.split(" ", 1)[0]
            by_kind[kind] = by_kind.get(kind, 0) + 1
        self.ctx.findings.smoke["registry_entries_matching_baseline"] = len(base) - len(lost)
        self.ctx.findings.smoke["registry_entries_baseline"] = len(base)
        self.ctx.event("registry.compared", baseline=len(base), lost=len(lost),
                       unknown=len(unknown))
        return {"registry_entries_baseline": len(base),
                "registry_changes_lost": len(lost), "registry_changes_lost_by_kind": by_kind,
                "registry_changes_lost_entries": lost[:db.LIST_LIMIT],
                "registry_entries_unknown": unknown[:db.LIST_LIMIT]}

    def revert(self) -> None:
        db.revert_database(self.ctx, self.state, self._registry_as_found)

    def _registry_as_found(self) -> None:
        err = self.registry.wait_ready(self.ctx.inventory.step_timeout_s)
        if err is not None:
            raise StepFailed(f"the registry does not answer after revert: {err}")
        view = self.registry.view()
        if view != self.state.base_view:
            raise StepFailed(f"after revert the registry differs from the baseline in "
                             f"{len(view ^ self.state.base_view)} entr(y/ies)")
