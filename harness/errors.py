"""drillbook's exception tree; foreign errors are translated at the adapter boundary.

    DrillbookError
    ├── InventoryError        bad inventory input: file, line, field (exit code 3, nothing runs)
    ├── UsageError            bad command-line input (exit code 3)
    ├── Inconclusive          a check could not run: unreachable target, no restore point, tool missing
    │   └── TargetUnreachable an adapter could not talk to its system (boto3, HTTP, restic errors)
    └── GuardRefused          a guard stopped a destructive action (target not drill-safe, no copy)

A runbook step that runs and finds the wrong answer does not raise: it returns a failed outcome,
which makes the verdict FAIL. Raising Inconclusive means "could not tell", which is never a pass.
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
