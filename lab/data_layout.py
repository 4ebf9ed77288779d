"""Where the lab's data parts live: their names, buckets, prefixes and files.

The one place the data component (lab/data.py), its jobs (lab/data_jobs.py) and the tests agree
on the LoRA adapter's, the pipeline config's and the dataset's locations in the store, the
replica bucket, the backup account, and the jobs' configuration, status and credentials files
under the lab's root.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.inventory import ResticTarget, Secret
from harness.targets.restic import ResticRepo

if TYPE_CHECKING:
    from lab.stack import Lab

ADAPTER = "lab-lora"
ADAPTER_PREFIX = f"adapters/{ADAPTER}/"
PIPELINE = "lab-rag"
PIPELINE_PREFIX = f"pipelines/{PIPELINE}/"
DATASETS_BUCKET = "drillbook-datasets"
DATASET = "lab-dataset"
DATASET_PREFIX = f"{DATASET}/"
PINNED_VERSION = "v0002"
DATASET_VERSIONS = ("v0001", "v0002", "v0003")
REPLICA_BUCKET = "drillbook-replica"
CANARY_PREFIX = "_replication-canary/"
BACKUP_USER = "drillbook-backup"
JOBS = ("backup", "replication")
DEFAULT_PERIODS = {"backup": 30.0, "replication": 5.0}


def data_dir(lab: Lab) -> Path:
    return lab.root / "data"


def config_path(lab: Lab) -> Path:
    return data_dir(lab) / "jobs.json"


def credentials_path(lab: Lab) -> Path:
    return data_dir(lab) / "backup-credentials"


def status_path(lab: Lab, job: str) -> Path:
    return data_dir(lab) / f"{job}-runs.jsonl"


def stage_root(lab: Lab) -> Path:
    return lab.root / "backup-stage"


def scheduled_repository(lab: Lab) -> str:
    return f"s3:{lab.ceph.endpoint}/drillbook-secondary/scheduled"


def adapter_dir(lab: Lab) -> Path:
    return lab.root / "assets" / ADAPTER


def pipeline_dir(lab: Lab) -> Path:
    return lab.root / "assets" / PIPELINE


def dataset_dir(lab: Lab) -> Path:
    return lab.root / "assets" / DATASET


def backup_path(lab: Lab, bucket: str, prefix: str) -> str:
    """Where the backup job stages a prefix, i.e. its directory inside the snapshots."""
    return str(stage_root(lab) / bucket / prefix.rstrip("/"))


def scheduled_restic(lab: Lab) -> ResticRepo:
    target = ResticTarget("scheduled-backups", scheduled_repository(lab),
                          Secret(lab.state.restic_password), None, None, False,
                          credentials_file=credentials_path(lab))
    return ResticRepo(target, cache_dir=lab.root / "restic-cache")

