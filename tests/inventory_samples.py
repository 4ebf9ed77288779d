"""A valid inventory shaped like the one `drillbook lab up` writes (core, data, databases,
registry, fleet), built without a lab, and hostile inputs for the loader and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml


def _laughs() -> bytes:
    """Ten anchors, each a list of nine aliases of the one before: 9**10 strings if expanded."""
    lines = ["version: 1", "a: &a [" + ", ".join(["lol"] * 9) + "]"]
    for prev, cur in zip("abcdefghi", "bcdefghij", strict=True):
        lines.append(f"{cur}: &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return ("\n".join(lines) + "\nsite: *j\n").encode()


BAD_FILES: dict[str, bytes] = {
    "not-utf8": b"version: 1\nsite: caf\xe9\n",
    "utf16": "version: 1\nsite: x\n".encode("utf-16"),
    "nul": b"version: 1\nsite: a\x00b\n",
    "control": b"version: 1\nsite: a\x1bb\n",
    "billion-laughs": _laughs(),
    "recursive-alias": b"version: 1\nsite: &s [*s]\n",
    "recursive-merge": b"version: 1\nx: &m {<<: *m}\n",
    "deep": b"version: 1\nsite: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "deep-map": b"version: 1\nsite:\n" + b"".join(b" " * i + b"k:\n" for i in range(1, 200)),
    "nodes-list-of-lists": b"version: 1\nsite: s\ntargets: {}\nassets:\n- {id: a, tier: 1, "
                           b"kind: inference-service, nodes: [[x]]}\n",
    "python-tag": b"version: 1\nsite: !!python/object/apply:os.system [echo hi]\n",
    "custom-tag": b"version: 1\nsite: !secret x\n",
    "binary-tag": b"version: 1\nsite: !!binary aGVsbG8=\n",
    "bad-date": b"version: 1\nsite: s\nexercise: {planned_date: 2026-13-45}\n",
    "huge-int": b"version: " + b"9" * 5000 + b"\n",
    "list-key": b"version: 1\n? [a, b]\n: c\n",
    "bool-key": b"version: 1\non: x\n",
    "two-documents": b"version: 1\n---\nversion: 1\n",
    "empty": b"",
    "only-comment": b"# nothing\n",
    "scalar": b"just text\n",
    "tabs": b"version: 1\n\tsite: x\n",
}


def lab_like(root: Path) -> dict[str, Any]:
    """The lab's inventory, with files it names created under ``root``."""
    (root / "golden").mkdir(parents=True, exist_ok=True)
    for name in ("lab-mlp.json", "lab-lora.json", "fallback.json"):
        (root / "golden" / name).write_text(json.dumps({"inputs": [[0.0]], "outputs": [[1.0]]}))
    ep = "http://127.0.0.1:7480"
    creds = {"access_key": "AK", "secret_key": "SK"}
    py = ["/usr/bin/python3", "-m"]
    job = {"kind": "job", "status_file": str(root / "runs.jsonl"), "period_s": 30.0,
           "start_command": [*py, "lab.data", "start"], "stop_command": [*py, "lab.data", "stop"],
           "run_command": [*py, "lab.backup_scheduler", "--once"],
           "credentials_file": str(root / "creds"), "service_account": "drillbook-backup",
           "admin": "rgw-admin", "drill_safe": True}
    targets: dict[str, Any] = {
        "artifact-store": {"kind": "s3", "endpoint": ep, "region": "default", **creds,
                           "drill_safe": True},
        "secondary-backups": {"kind": "restic", "repository": f"s3:{ep}/drillbook-secondary/restic",
                              "password": "pw", **creds, "drill_safe": False},
        "inference": {"kind": "inference", "url": "http://127.0.0.1:8100", "model": "lab-mlp",
                      "drill_safe": True},
        "rgw-admin": {"kind": "rgw-admin", "conf": str(root / "ceph.conf"), "drill_safe": True},
        "scheduled-backups": {"kind": "restic",
                              "repository": f"s3:{ep}/drillbook-secondary/scheduled",
                              "password": "pw", "credentials_file": str(root / "creds"),
                              "drill_safe": False},
        "backup-job": {**job, "role": "backup", "repository": "scheduled-backups",
                       "bucket": "drillbook-secondary", "keep_last": 3},
        "replication-job": {**job, "role": "replication", "replica_store": "replica-store",
                            "replica_bucket": "drillbook-replica"},
        "replica-store": {"kind": "s3", "endpoint": ep, **creds, "drill_safe": False},
        "inference-adapter": {"kind": "inference", "url": "http://127.0.0.1:8100",
                              "model": "lab-mlp+lab-lora", "drill_safe": True},
        "postgres": {"kind": "postgres", "host": "127.0.0.1", "port": 5432, "user": "postgres",
                     "password": "pgpw", "drill_safe": True},
        "dump-store": {"kind": "s3", "endpoint": ep, **creds, "drill_safe": False},
        "mlflow": {"kind": "mlflow", "url": "http://127.0.0.1:5000", "drill_safe": True},
        "fleet-frontend": {"kind": "inference", "url": "http://127.0.0.1:8200",
                           "model": "lab-mlp", "drill_safe": True},
        "fleet-lb": {"kind": "loadbalancer", "socket": str(root / "haproxy.sock"),
                     "backend": "inference", "frontend": "fleet-frontend", "drill_safe": True},
        "fleet-orchestrator": {"kind": "orchestrator", "state_file": str(root / "state.json")},
    }
    nodes = ["gpu-node-1", "gpu-node-2", "gpu-node-3"]
    for n in nodes:
        targets[n] = {"kind": "node", "pidfile": str(root / n / "agent.pid"),
                      "power_on": [*py, "lab.fleet", "power-on", "--node", n], "drill_safe": True}
    data = {"store": "artifact-store", "backup": "scheduled-backups"}
    assets: list[dict[str, Any]] = [
        {"id": "lab-mlp-weights", "tier": 1, "kind": "model-weights", "store": "artifact-store",
         "bucket": "drillbook-models", "prefix": "lab-mlp/", "manifest": "manifest.json",
         "backup": "secondary-backups", "backup_path": "/stage/models", "served_by": "inference",
         "golden": "golden/lab-mlp.json"},
        {"id": "lab-lora-adapter", "tier": 1, "kind": "lora-adapter", **data,
         "bucket": "drillbook-models", "prefix": "adapters/lab-lora/",
         "backup_path": "/backup/adapters", "served_by": "inference-adapter",
         "golden": str(root / "golden" / "lab-lora.json")},
        {"id": "lab-rag-pipeline", "tier": 2, "kind": "pipeline-config", **data,
         "bucket": "drillbook-models", "prefix": "pipelines/lab-rag/",
         "backup_path": "/backup/pipelines"},
        {"id": "lab-dataset", "tier": 1, "kind": "dataset", **data,
         "bucket": "drillbook-datasets", "prefix": "lab-dataset/",
         "manifest": "versions/v0002.json", "backup_path": "/backup/datasets"},
        {"id": "annotations-db", "tier": 1, "kind": "annotation-db", "store": "postgres",
         "database": "annotations", "backup": "dump-store", "bucket": "drillbook-secondary",
         "prefix": "pgdump/annotations/"},
        {"id": "lab-mlp-registry", "tier": 1, "kind": "model-registry", "store": "postgres",
         "database": "mlflow", "backup": "dump-store", "bucket": "drillbook-secondary",
         "prefix": "pgdump/mlflow/", "served_by": "mlflow"},
        {"id": "lab-mlp-service", "tier": 1, "kind": "inference-service",
         "store": "artifact-store", "bucket": "drillbook-models", "prefix": "lab-mlp/",
         "served_by": "fleet-frontend", "golden": "golden/lab-mlp.json", "balancer": "fleet-lb",
         "orchestrator": "fleet-orchestrator", "nodes": nodes,
         "fallback_golden": "golden/fallback.json"},
    ]
    return {
        "version": 1, "site": "drillbook-lab", "targets": targets, "assets": assets,
        "objectives": {"tiers": {1: {"rto_s": 300, "rpo_s": 86400},
                                 2: {"rto_s": 3600, "rpo_s": 86400}},
                       "assets": {"lab-lora-adapter": {"rpo_s": 300},
                                  "annotations-db": {"rto_s": 120, "rpo_s": 300},
                                  "lab-mlp-service": {"rto_s": 120}}},
        "guards": {"safety_bucket": "drillbook-safety"},
        "probe": {"interval_s": 0.2, "detect_timeout_s": 90, "step_timeout_s": 300},
        "slo": {"error_rate": 0.01, "p95_ms": 150, "throughput_ratio": 0.8, "sustain_s": 3},
        "load": {"users": 6, "baseline_s": 3, "acceptance_s": 3},
        "exercise": {"title": "Q4 drill", "planned_date": "2026-11-25",
                     "participants": [{"name": "Ana Ruiz", "role": "incident lead"}],
                     "approver": "Head of SRE"},
    }


def dump(doc: Any) -> bytes:
    return yaml.safe_dump(doc, sort_keys=False).encode("utf-8")
