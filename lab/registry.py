"""The lab's model registry: an MLflow tracking/registry server (PyPI ``mlflow``) on 127.0.0.1.

Its backend store is the ``mlflow`` database in the lab's PostgreSQL (role ``mlflow``, through
psycopg 3: ``postgresql+psycopg://``); its artifact store is the lab's S3 (Ceph RGW) bucket
``drillbook-mlflow``, written by the server itself (``--serve-artifacts``, with
``MLFLOW_S3_ENDPOINT_URL`` and its own RGW user), so clients upload artifacts over HTTP. One
worker: the lab runs on two cores.

Seeded once: an experiment with two training runs of the lab model (params, metrics, the model's
manifest and config as run artifacts), the registered model ``lab-mlp`` with two versions, model
and version tags, stages (v1 Archived, v2 Production) and the alias ``champion`` on v2. The
registry's database is added to the database backup job (lab.postgres), so registry restore
points are real pg_dump archives on the secondary site.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.inventory import MlflowTarget, S3Target, Secret
from harness.targets.registry import MlflowRegistry
from harness.targets.s3 import S3Store
from lab.ceph import DaemonState
from lab.components import Progress
from lab.postgres import (
    DUMP_PREFIX,
    DUMP_STORE,
    TARGET,
    BackupJob,
    PostgresServer,
    backup_database,
    catalog,
    load_jobs,
    may_create_database,
    register_job,
)
from lab.procs import free_port, live_pid, spawn_detached, write_json
from lab.stack import MODEL_NAME, SECONDARY_BUCKET, Lab, LabError

REGISTRY_DB = "mlflow"
REGISTRY_ROLE = "mlflow"
ARTIFACT_BUCKET = "drillbook-mlflow"
EXPERIMENT = "lab-mlp-training"
REGISTRY_TARGET = "mlflow"
REGISTRY_ASSET = "lab-mlp-registry"
START_TIMEOUT_S = 240.0


@dataclass
class RegistryState:
    port: int
    access_key: str = ""
    secret_key: str = ""


class RegistryComponent:
    """MLflow tracking/registry server with its database in PostgreSQL and artifacts on S3."""

    name = "mlflow"

    # -- paths and state -----------------------------------------------------------------------

    @staticmethod
    def root(lab: Lab) -> Path:
        return lab.root / "mlflow"

    def state(self, lab: Lab) -> RegistryState:
        path = self.root(lab) / "state.json"
        if path.exists():
            return RegistryState(**json.loads(path.read_text()))
        st = RegistryState(free_port())
        self._save(lab, st)
        return st

    def _save(self, lab: Lab, st: RegistryState) -> None:
        write_json(self.root(lab) / "state.json", asdict(st), private=True)

    def url(self, lab: Lab) -> str:
        return f"http://127.0.0.1:{self.state(lab).port}"

    def target(self, lab: Lab) -> MlflowTarget:
        return MlflowTarget(REGISTRY_TARGET, self.url(lab), drill_safe=True)

    def client(self, lab: Lab) -> MlflowRegistry:
        return MlflowRegistry(self.target(lab))

    def pid_file(self, lab: Lab) -> Path:
        return self.root(lab) / "server.pid"

    def pid(self, lab: Lab) -> int | None:
        return live_pid(self.pid_file(lab), b"mlflow", f"--port\0{self.state(lab).port}".encode())

    # -- up / down -----------------------------------------------------------------------------

    def up(self, lab: Lab, progress: Progress) -> None:
        st = self.state(lab)
        if not st.access_key:
            st.access_key, st.secret_key = lab.ceph.ensure_user("drillbook-mlflow",
                                                                "MLflow artifact store")
            self._save(lab, st)
        S3Store(S3Target("mlflow-artifacts", lab.ceph.endpoint, "default",
                         Secret(st.access_key), Secret(st.secret_key), False)
                ).ensure_bucket(ARTIFACT_BUCKET, versioned=False)
        pg = PostgresServer(lab.root)
        pg.ensure_role(REGISTRY_ROLE)
        job = BackupJob(REGISTRY_DB, f"{DUMP_PREFIX}{REGISTRY_DB}/")
        if not may_create_database(lab, pg.db(), REGISTRY_DB, catalog(lab, job), progress):
            progress("lab: the MLflow registry is not started (its database is missing)")
            return
        pg.ensure_database(REGISTRY_DB, REGISTRY_ROLE)
        self.start(lab, progress)
        reg = self.client(lab)
        if not any(m.name == MODEL_NAME for m in reg.registered_models()):
            progress("lab: registering the lab model in MLflow")
            seed_registry(lab, reg)
        register_job(lab.root, job)
        if not catalog(lab, load_jobs(lab.root)[REGISTRY_DB]).has_records():
            rec = backup_database(lab, REGISTRY_DB)
            progress(f"lab: first dump of the registry database at {rec.created.isoformat()}")

    def start(self, lab: Lab, progress: Progress = print) -> None:
        if self.pid(lab) is not None and self._healthy(lab):
            return
        st = self.state(lab)
        pg = PostgresServer(lab.root)
        pw = pg.state.role_passwords[REGISTRY_ROLE]
        # the password reaches libpq through PGPASSWORD, not the command line (ps shows that)
        backend = f"postgresql+psycopg://{REGISTRY_ROLE}@127.0.0.1:{pg.state.port}/{REGISTRY_DB}"
        progress(f"lab: MLflow registry on {self.url(lab)}")
        env = dict(os.environ, MLFLOW_S3_ENDPOINT_URL=lab.ceph.endpoint,
                   AWS_ACCESS_KEY_ID=st.access_key, AWS_SECRET_ACCESS_KEY=st.secret_key,
                   AWS_DEFAULT_REGION="default", MLFLOW_TRACKING_URI="", PGPASSWORD=pw,
                   # nothing leaves the machine: no telemetry, no version checks
                   MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true",
                   # the server's job runner (GenAI scoring, trace archival) would add seven
                   # worker processes of ~250 MB each; the registry needs none of them
                   MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
        log = lab.root / "log" / "mlflow.log"
        pid = spawn_detached(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend,
             "--artifacts-destination", f"s3://{ARTIFACT_BUCKET}/artifacts", "--serve-artifacts",
             "--host", "127.0.0.1", "--port", str(st.port), "--workers", "1"],
            log=log, env=env, cwd=self.root(lab))
        self.pid_file(lab).write_text(str(pid))
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._healthy(lab):
            if self.pid(lab) is None:
                raise LabError(f"MLflow server exited; see {log}\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise LabError(f"MLflow server not ready after {START_TIMEOUT_S:g} s; see {log}")
            time.sleep(0.3)

    def _healthy(self, lab: Lab) -> bool:
        try:
            with urllib.request.urlopen(self.url(lab) + "/health", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self, lab: Lab) -> None:
        """SIGTERM the server's process group (the server and its worker), then SIGKILL."""
        pid = self.pid(lab)
        if pid is None:
            return
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        for _ in range(100):
            if self.pid(lab) is None:
                break
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)

    def down(self, lab: Lab) -> None:
        self.stop(lab)

    def status(self, lab: Lab) -> list[DaemonState]:
        pid = self.pid(lab)
        ok = pid is not None and self._healthy(lab)
        return [DaemonState("mlflow", pid, ok, f"{self.url(lab)} {'ready' if ok else 'down'}")]

    def contribute(self, lab: Lab, inventory: dict[str, Any]) -> None:
        inventory["targets"][REGISTRY_TARGET] = {"kind": "mlflow", "url": self.url(lab),
                                                 "drill_safe": True}
        inventory["assets"].append({
            "id": REGISTRY_ASSET, "tier": 1, "kind": "model-registry", "store": TARGET,
            "database": REGISTRY_DB, "backup": DUMP_STORE, "bucket": SECONDARY_BUCKET,
            "prefix": f"{DUMP_PREFIX}{REGISTRY_DB}/", "served_by": REGISTRY_TARGET})
        inventory["objectives"].setdefault("assets", {})[REGISTRY_ASSET] = {
            "rto_s": 180, "rpo_s": 300}


def seed_registry(lab: Lab, reg: MlflowRegistry) -> None:
    """Two training runs of the lab model, registered as versions 1 and 2."""
    exp = reg.experiment_id(EXPERIMENT)
    reg.ensure_model(MODEL_NAME, "The lab's MLP, served by the inference node")
    reg.set_model_tag(MODEL_NAME, "team", "drillbook-lab")
    reg.set_model_tag(MODEL_NAME, "tier", "1")
    files = {name: (lab.asset_dir / name).read_bytes()
             for name in ("manifest.json", "config.json")}
    runs = (("train-seed-1", {"accuracy": 0.912, "loss": 0.281}, "Archived"),
            ("train-seed-2", {"accuracy": 0.947, "loss": 0.164}, "Production"))
    for i, (run_name, metrics, stage) in enumerate(runs, start=1):
        run_id, artifact_uri = reg.create_run(
            exp, run_name, metrics=metrics, params={"seed": str(i), "hidden": "256"},
            tags={"mlflow.source.type": "JOB"})
        for name, data in files.items():
            reg.upload_artifact(artifact_uri, f"model/{name}", data)
        version = reg.create_version(MODEL_NAME, f"{artifact_uri}/model", run_id,
                                     tags={"weights": f"s3://drillbook-models/{MODEL_NAME}/"})
        reg.set_version_tag(MODEL_NAME, version, "validated", "true")
        reg.transition_stage(MODEL_NAME, version, stage)
    reg.set_alias(MODEL_NAME, "champion", "2")


def registry_change(reg: MlflowRegistry, tag: str) -> int:
    """A change a user makes to the registry (for drills: one made after the last backup):
    a new model tag, a new tag on version 2 and the alias ``candidate`` on version 1. Returns how
    many registry entries it added."""
    reg.set_model_tag(MODEL_NAME, f"note-{tag}", "changed after the last backup")
    reg.set_version_tag(MODEL_NAME, "2", f"review-{tag}", "pending")
    reg.set_alias(MODEL_NAME, f"candidate-{tag}", "1")
    return 3


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
