"""drillbook's exception tree; foreign errors are translated at the adapter boundary.

Every error drillbook raises on purpose, wherever its class lives (the module is given for
classes outside this one); tests/test_errors_tree.py compares this drawing with the classes.

    DrillbookError                         root of every error drillbook raises on purpose
    ├── InventoryError                     bad inventory input: file, line, field (exit 3)
    ├── UsageError                         bad command-line or marker input (exit 3, nothing ran)
    │   └── harness.model.base.EvidenceFormatError      an evidence document is malformed
    ├── Inconclusive                       a check could not run: never a pass
    │   ├── TargetUnreachable              an adapter could not talk to its system
    │   │   ├── harness.targets.s3.StoreError           the store answered and refused
    │   │   └── harness.hosts.backend.HostUnreachable   a host could not be reached over ssh
    │   ├── GuardRefused                   a guard stopped a destructive action
    │   ├── harness.lease.LeaseHeld                     another live drill holds a resource
    │   ├── harness.lease.LeaseOrphaned                 a dead drill's lease is on a resource
    │   ├── harness.targets.database.DatabaseMissing    the database does not exist
    │   ├── harness.targets.database.ToolFailed         pg_dump / pg_restore failed
    │   ├── harness.targets.kube.KubeNotFound           404 from the Kubernetes API
    │   ├── harness.targets.kube.KubeConflict           409: changed since it was read
    │   ├── harness.targets.kube.KubeTooManyRequests    429: e.g. a PodDisruptionBudget
    │   ├── harness.targets.kube.KubeGone               410: a watch's resourceVersion is old
    │   ├── harness.targets.loadbalancer.CommandRejected  HAProxy refused a runtime command
    │   └── harness.targets.registry.RegistryError      MLflow answered with an error
    ├── StepFailed                         a step ran and its check said no: FAIL
    ├── harness.load.LoadError                          the load generator could not run
    ├── reports.validate.EvidenceInvalid                evidence.json does not match its schema
    ├── lab.stack.LabError                              the embedded lab could not do it
    ├── lab.fleet.FleetError                            the lab's inference fleet could not
    ├── lab.sshd.SshdError                              the lab's OpenSSH server could not
    └── lab.postgres.PostgresError                      the lab's PostgreSQL could not

A runbook step that runs and finds the wrong answer raises StepFailed: the step's outcome is
FAILED and the verdict FAIL. Raising Inconclusive means "could not tell", which is never a pass.
Errors of the user's input (InventoryError, UsageError) are raised before anything is touched.
"""

from __future__ import annotations

from pathlib import Path


class DrillbookError(Exception):
    """Root of every error drillbook raises on purpose."""


class InventoryError(DrillbookError):
    def __init__(self, file: Path, line: int, field: str, message: str) -> None:
        self.file, self.line, self.field, self.message = file, line, field, message
        super().__init__(f"{file}:{line}: {field}: {message}")


class UsageError(DrillbookError):
    pass


class Inconclusive(DrillbookError):
    pass


class TargetUnreachable(Inconclusive):
    pass


class GuardRefused(Inconclusive):
    """A guard refused: the drill cannot safely go on, so it proves nothing (INCONCLUSIVE)."""


class StepFailed(DrillbookError):
    """A step ran and its check said no (checksum mismatch, outputs differ): the drill FAILs."""
