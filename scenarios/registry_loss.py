"""Scenario ``registry-loss``: the model registry's database is destroyed; it comes back from the
newest pg_dump, and the registry (MLflow) serves the same models again.

Everything :class:`~scenarios.annotation_db_loss.DatabaseLoss` does for a database (prove the
newest dump restores before dropping anything, safety copy, exact restore of the newest restore
point, row-level loss accounting, revert), plus the registry as its users see it: before the
fault the registry's API view is recorded (registered models, versions, stages, aliases, model
and version tags, the metrics of each version's run); after the restore the registry must answer
again, and its view is compared with the baseline entry by entry. Entries in the baseline that did
not come back are the registry changes lost (the RPO, counted); a model version created before the
restore point that did not come back, or an entry that was never in the baseline, is a FAIL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from harness.errors import Inconclusive, StepFailed, TargetUnreachable
from harness.scenario import RunbookStep
from harness.targets.database import DumpRecord
from harness.targets.registry import MlflowRegistry, RegistryError
from scenarios.annotation_db_loss import LIST_LIMIT, DatabaseLoss, TableLoss


class RegistryLoss(DatabaseLoss):
    name: ClassVar[str] = "registry-loss"
    summary: ClassVar[str] = ("destroy the model registry's database, restore it from the newest "
                              "pg_dump; verify models, versions, stages, aliases, tags, metrics")
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-registry",)
    blast_radius: ClassVar[str] = ("the registry's database on its PostgreSQL server; the "
                                   "registry server itself and its artifact store are untouched")

    base_view: set[str]
    #: version reference ("name/version") -> creation time, from the baseline
    version_created: dict[str, datetime]

    @property
    def registry(self) -> MlflowRegistry:
        a = self.ctx.asset
        assert a.served_by is not None  # the inventory requires it for model registries
        return self.ctx.adapters.mlflow(a.served_by)

    def preflight(self) -> None:
        self.registry.ping()
        super().preflight()

    def baseline(self) -> None:
        super().baseline()
        self.base_view = self.registry.view()
        if not self.base_view:
            raise Inconclusive(f"registry {self.registry.target.url} holds no registered model: "
                               f"nothing to compare after a restore")
        self.version_created = {}
        for m in self.registry.registered_models():
            for v in self.registry.versions(m.name):
                self.version_created[f"{m.name}/{v.version}"] = datetime.fromtimestamp(
                    v.created_ms / 1000, UTC)
        self.ctx.event("baseline.registry", entries=len(self.base_view),
                       versions=len(self.version_created))

    def detect(self) -> bool:
        # seen from the outside, as a user would: the registry no longer answers a search
        try:
            self.registry.ping()
        except (RegistryError, TargetUnreachable):
            return True
        return False

    def runbook(self) -> list[RunbookStep]:
        return super().runbook() + [
            RunbookStep("reconnect-registry", self.reconnect,
                        "the registry server answers from the restored database"),
            RunbookStep("smoke-test", self.smoke_test, "every alias resolves to a version"),
        ]

    def reconnect(self) -> None:
        err = self.registry.wait_ready(self.ctx.inventory.step_timeout_s)
        if err is not None:
            raise StepFailed(f"the registry does not answer after the restore: {err}")

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

    def explain_loss(self, rec: DumpRecord, tables: dict[str, TableLoss]) -> dict[str, Any]:
        """The registry as its users see it, against the baseline."""
        try:
            view = self.registry.view()
        except (RegistryError, TargetUnreachable) as exc:
            self.ctx.fail(f"the registry cannot be read after recovery: {exc}")
            return {"registry_changes_lost": None}
        lost = sorted(self.base_view - view)
        unknown = sorted(view - self.base_view)
        missing_old = sorted(
            ref for ref, created in self.version_created.items()
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
        self.ctx.findings.smoke["registry_entries_matching_baseline"] = \
            len(self.base_view) - len(lost)
        self.ctx.findings.smoke["registry_entries_baseline"] = len(self.base_view)
        self.ctx.event("registry.compared", baseline=len(self.base_view), lost=len(lost),
                       unknown=len(unknown))
        return {"registry_entries_baseline": len(self.base_view),
                "registry_changes_lost": len(lost), "registry_changes_lost_by_kind": by_kind,
                "registry_changes_lost_entries": lost[:LIST_LIMIT],
                "registry_entries_unknown": unknown[:LIST_LIMIT]}

    def after_revert(self) -> None:
        err = self.registry.wait_ready(self.ctx.inventory.step_timeout_s)
        if err is not None:
            raise StepFailed(f"the registry does not answer after revert: {err}")
        view = self.registry.view()
        if view != self.base_view:
            raise StepFailed(f"after revert the registry differs from the baseline in "
                             f"{len(view ^ self.base_view)} entr(y/ies)")
