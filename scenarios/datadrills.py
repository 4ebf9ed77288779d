"""Shared pieces of the data drills: restore points, loss accounting, store errors.

:func:`record_loss`, :func:`backup_job_for`, :func:`replication_job_for`, :func:`has_job`,
:func:`classify_store_error`, :func:`injected_at`: plain helpers, kept in harness/runbook/jobs.py
and harness/runbook/timeline.py and named here for the drills that import them from this module.
The backup-job drills are built from harness/runbook/jobs.py, the object-restore drills from
harness/runbook/objects.py.
"""

from __future__ import annotations

from harness.runbook.jobs import (
    STORE_ERRORS,
    backup_job_for,
    classify_store_error,
    has_job,
    record_loss,
    replication_job_for,
)
from harness.runbook.timeline import injected_at

__all__ = ["STORE_ERRORS", "backup_job_for", "classify_store_error", "has_job", "injected_at",
           "record_loss", "replication_job_for"]
