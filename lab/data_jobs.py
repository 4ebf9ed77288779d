"""The lab's scheduled jobs: the restic backup and the replication, as detached processes.

Each job is a ``lab.backup_scheduler`` process started and stopped here (as ``systemctl`` would
on a real site), configured by one JSON file it re-reads while running, and reporting each run as
a line of its status file; ``wait_for_success`` waits for a run that succeeded.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lab.data_layout import (
    ADAPTER_PREFIX,
    CANARY_PREFIX,
    DATASET_PREFIX,
    DATASETS_BUCKET,
    DEFAULT_PERIODS,
    JOBS,
    PIPELINE_PREFIX,
    REPLICA_BUCKET,
    config_path,
    credentials_path,
    scheduled_repository,
    stage_root,
    status_path,
)
from lab.procs import live_pid

if TYPE_CHECKING:
    from lab.stack import Lab

_PERIOD_ENV = {"backup": "DRILLBOOK_BACKUP_PERIOD_S", "replication": "DRILLBOOK_REPLICATION_PERIOD_S"}


def write_job_config(lab: Lab, periods: dict[str, float] | None = None) -> None:
    from lab.stack import MODEL_NAME, MODELS_BUCKET, REGION
    periods = periods or {j: float(os.environ.get(_PERIOD_ENV[j], DEFAULT_PERIODS[j]))
                          for j in JOBS}
    tier1 = [{"bucket": MODELS_BUCKET, "prefix": f"{MODEL_NAME}/"},
             {"bucket": MODELS_BUCKET, "prefix": ADAPTER_PREFIX},
             {"bucket": DATASETS_BUCKET, "prefix": DATASET_PREFIX}]
    cfg = {
        "endpoint": lab.ceph.endpoint, "region": REGION,
        "credentials_file": str(credentials_path(lab)),
        "backup": {
            "period_s": periods["backup"], "repository": scheduled_repository(lab),
            "password": lab.state.restic_password, "cache_dir": str(lab.root / "restic-cache"),
            "stage_root": str(stage_root(lab)), "status_file": str(status_path(lab, "backup")),
            "host": "drillbook-lab",
            "sources": [*tier1, {"bucket": MODELS_BUCKET, "prefix": PIPELINE_PREFIX}],
        },
        "replication": {
            "period_s": periods["replication"], "replica_bucket": REPLICA_BUCKET,
            "status_file": str(status_path(lab, "replication")),
            "sources": [*tier1, {"bucket": MODELS_BUCKET, "prefix": CANARY_PREFIX}],
        },
    }
    path = config_path(lab)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(cfg, fh, indent=2)
    os.replace(tmp, path)


def set_period(lab: Lab, job: str, seconds: float) -> None:
    """Change a running job's period (it re-reads its configuration within 0.2 s)."""
    cfg = json.loads(config_path(lab).read_text())
    write_job_config(lab, {j: float(seconds if j == job else cfg[j]["period_s"]) for j in JOBS})


def pid_file(lab: Lab, job: str) -> Path:
    return lab.root / "run" / f"{job}-job.pid"


def job_pid(lab: Lab, job: str) -> int | None:
    return live_pid(pid_file(lab, job), b"lab.backup_scheduler")


def start_job(lab: Lab, job: str) -> int:
    from lab.procs import spawn_detached
    pid = job_pid(lab, job)
    if pid is not None:
        return pid
    pid = spawn_detached([sys.executable, "-m", "lab.backup_scheduler", "--config",
                          str(config_path(lab)), "--job", job],
                         log=lab.root / "log" / f"{job}-job.log", env=dict(os.environ),
                         cwd=Path(__file__).resolve().parent.parent)
    pid_file(lab, job).parent.mkdir(parents=True, exist_ok=True)
    pid_file(lab, job).write_text(str(pid))
    return pid


def stop_job(lab: Lab, job: str) -> None:
    pid = job_pid(lab, job)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):  # a run in progress finishes first (restic is not cut mid-write)
            if job_pid(lab, job) is None:
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # it exited between the check and the signal


def last_run(lab: Lab, job: str) -> dict[str, Any] | None:
    try:
        lines = status_path(lab, job).read_text().splitlines()
    except FileNotFoundError:
        return None
    for line in reversed(lines):
        try:
            doc: dict[str, Any] = json.loads(line)
            return doc
        except json.JSONDecodeError:
            continue
    return None


def wait_for_success(lab: Lab, job: str, after: str = "", timeout_s: float = 120) -> dict[str, Any]:
    """The first successful run that started after ``after`` (ISO UTC); raises on timeout."""
    from lab.stack import LabError
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            lines = status_path(lab, job).read_text().splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            doc = json.loads(line)
            if doc["ok"] and doc["started_utc"] > after:
                return dict(doc)
        time.sleep(0.2)
    run = last_run(lab, job)
    raise LabError(f"the {job} job has not succeeded within {timeout_s:.0f} s "
                   f"(last run: {run and run.get('error')})")

