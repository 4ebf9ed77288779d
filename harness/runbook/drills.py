"""Drill templates: the wiring of a whole drill out of runbook steps, for a family of scenarios
that differ only in what they declare.

:class:`ObjectRestoreDrill` is the artifact-deletion family: objects listed by a manifest are
deleted (``soft``: delete markers; ``purge``: every version), restored from bucket history or
from the newest good restic snapshot, verified by SHA-256 and, where the asset is served, by the
endpoint's golden outputs. A scenario in the family sets its name, summary, kinds and tiers, and
adds checks by overriding :meth:`~ObjectRestoreDrill.verify` (calling ``super().verify()``).

:class:`BackupJobDrill` is the backup-job family: a fault on what the backup job depends on (its
account, its target's capacity) makes the job's next run fail; the runbook classifies the
store's error, applies the scenario's remedy, re-runs the backup and proves the new snapshot.
A scenario in the family declares its state, the resource its fault changes, its preflight
checks and its remedy steps.

Templates are not scenarios: they have no name and are registered nowhere.
"""

from __future__ import annotations

import abc
from functools import partial
from typing import TYPE_CHECKING, ClassVar, Generic, TypeVar

from harness.blast import Touch
from harness.runbook import jobs, objects, serving
from harness.runbook.jobs import record_loss
from harness.runbook.object_state import ObjectState, Source
from harness.runbook.serving import ServingState
from harness.scenario import RunbookStep, Scenario
from harness.targets.protocols import RgwAdminAPI

if TYPE_CHECKING:
    from harness.context import DrillContext
    from harness.inventory import Asset, Inventory
    from harness.inventory.model import JobTarget

S = TypeVar("S", bound=jobs.BackupJobState)


class ObjectRestoreDrill(Scenario):
    variants: ClassVar[tuple[str, ...]] = ("purge", "soft")
    destructive: ClassVar[bool] = True

    def __init__(self, ctx: DrillContext) -> None:
        super().__init__(ctx)
        self.objects = self.new_object_state(
            Source.VERSIONS if ctx.variant == "soft" else Source.BACKUP)
        self.serving = ServingState()

    def new_object_state(self, source: Source) -> ObjectState:
        """The per-drill state of the objects; override to map manifest entries to other keys."""
        return ObjectState(source)

    def preflight(self) -> None:
        objects.read_manifest(self.ctx, self.objects)
        serving.preflight(self.ctx, self.serving)
        objects.preflight(self.ctx, self.objects)

    def baseline(self) -> None:
        serving.record_reference(self.ctx, self.serving)
        objects.take_safety_copy(self.ctx, self.objects)

    def cleanup(self) -> None:
        objects.discard_safety_copy(self.ctx, self.objects, "the drill ended before inject")

    def inject(self) -> None:
        objects.delete_objects(self.ctx, self.objects, every_version=self.ctx.variant == "purge")

    def detect(self) -> bool:
        return objects.objects_missing(self.ctx, self.objects)

    def runbook(self) -> list[RunbookStep]:
        return [*objects.restore_steps(self.ctx, self.objects, partial(record_loss, self.ctx)),
                *serving.steps(self.ctx, self.serving)]

    def verify(self) -> None:
        objects.verify_stored(self.ctx, self.objects)
        serving.verify_outputs(self.ctx, self.serving)

    def revert(self) -> None:
        if objects.put_back(self.ctx, self.objects):
            serving.reload_if_needed(self.ctx, self.serving)
            objects.discard_safety_copy(self.ctx, self.objects, "reverted")


class BackupJobDrill(Scenario, Generic[S]):
    """The backup job's next run fails; the scenario's remedy, then a re-run proven by a new
    snapshot that holds the asset as the store has it."""

    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights", "lora-adapter", "pipeline-config",
                                              "dataset")
    destructive: ClassVar[bool] = True
    #: the store error kinds (harness/runbook/jobs.py's classes) this runbook knows how to fix
    expected_error: ClassVar[tuple[str, ...]]

    def __init__(self, ctx: DrillContext) -> None:
        super().__init__(ctx)
        self.state: S = self.new_state()

    @abc.abstractmethod
    def new_state(self) -> S:
        """The per-drill state, a :class:`~harness.runbook.jobs.BackupJobState`."""

    @abc.abstractmethod
    def fault_touch(self, job: JobTarget) -> Touch | None:
        """The resource on the job's admin target that the fault changes (None: the job names
        none, and preflight refuses)."""

    @abc.abstractmethod
    def check_job(self, job: JobTarget) -> None:
        """Preflight beyond the job's own: what this fault needs of the job (Inconclusive if
        missing), and the state found before it."""

    @abc.abstractmethod
    def remedy(self) -> list[RunbookStep]:
        """The steps between classifying the error and re-running the backup."""

    @classmethod
    def applies_to(cls, inventory: Inventory, asset: Asset) -> bool:
        """The asset has a backup job in the inventory."""
        return super().applies_to(inventory, asset) and jobs.has_job(inventory, "backup", asset)

    @property
    def admin(self) -> RgwAdminAPI:
        return jobs.rgw_admin(self.ctx, self.state.job_target)

    def touches(self) -> list[Touch]:
        """The backup job (stopped, re-run) and what the fault changes on its admin target."""
        job = jobs.backup_job_for(self.ctx)
        out = jobs.backup_job_touches(self.ctx)
        fault = self.fault_touch(job) if job.admin is not None else None
        if fault is not None:
            out.append(fault)
        return out

    def preflight(self) -> None:
        jobs.require_backup_job(self.ctx, self.state)
        self.check_job(self.state.job_target)

    def detect(self) -> bool:
        return jobs.backup_failed(self.ctx, self.state)

    def runbook(self) -> list[RunbookStep]:
        return [jobs.classify_error_step(self.ctx, self.state, self.expected_error),
                *self.remedy(), *jobs.backup_proof_steps(self.ctx, self.state)]
