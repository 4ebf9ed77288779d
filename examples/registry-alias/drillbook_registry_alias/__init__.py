"""A registry alias points to the wrong version; the runbook points it back at the recorded one."""

from typing import ClassVar

from harness.errors import Inconclusive, StepFailed
from harness.model import RestorePoint
from harness.params import Param
from harness.scenario import RunbookStep, Scenario
from harness.targets.protocols import RegistryAPI


class RegistryAliasDrift(Scenario):
    name: ClassVar[str] = "registry-alias-drift"
    summary: ClassVar[str] = "move a model's registry alias to another version, then point it back"
    variants: ClassVar[tuple[str, ...]] = ("wrong-version",)
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-registry",)
    params: ClassVar[tuple[Param, ...]] = (Param("model", str, "lab-mlp", help="registered model"),
                                           Param("alias", str, "champion", help="alias to move"))
    good = ""  # the version the alias pointed at before the fault: the restore point

    @property
    def registry(self) -> RegistryAPI:
        assert self.ctx.asset.served_by is not None  # a model-registry asset names its server
        return self.ctx.adapters.mlflow(self.ctx.asset.served_by)

    def points_at(self) -> str | None:
        model, alias = self.ctx.params.as_str("model"), self.ctx.params.as_str("alias")
        found = [m.aliases.get(alias) for m in self.registry.registered_models() if m.name == model]
        return found[0] if found else None

    def point(self, version: str) -> None:
        self.registry.set_alias(self.ctx.params.as_str("model"), self.ctx.params.as_str("alias"),
                                version)

    def preflight(self) -> None:
        self.good = self.points_at() or ""
        if not self.good:
            raise Inconclusive("the alias is not set: there is nothing to drill")

    def baseline(self) -> None:
        self.ctx.findings.restore_point = RestorePoint("alias", self.good, self.ctx.clock.utc(),
                                                       "read in preflight")

    def inject(self) -> None:
        versions = self.registry.versions(self.ctx.params.as_str("model"))
        others = [v.version for v in versions if v.version != self.good]
        if not others:
            raise Inconclusive("the model has one version: the alias cannot point elsewhere")
        self.point(others[0])

    def detect(self) -> bool:
        return self.points_at() != self.good

    def runbook(self) -> list[RunbookStep]:
        return [RunbookStep("repoint-alias", self.revert, "point the alias at the recorded one")]

    def verify(self) -> None:
        now = self.points_at()
        self.ctx.findings.smoke.update(passed=now == self.good, summary=f"alias -> version {now}")

    def revert(self) -> None:
        self.point(self.good)
        if self.points_at() != self.good:
            raise StepFailed(f"the alias still points at version {self.points_at()}")
