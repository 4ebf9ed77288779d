"""The embedded lab: a real on-prem AI stack on 127.0.0.1, rooted in one directory.

``Lab(root).up()`` brings up, idempotently:

- Ceph RADOS Gateway (single node) as the artifact store, with an operator account and a backup
  service account made by radosgw-admin;
- the versioned ``drillbook-models`` bucket holding a real small network (two versions: an older
  model and the current one, safetensors shards with a SHA-256 manifest) and the secondary site's
  ``drillbook-secondary`` bucket holding a restic repository;
- a restic backup of the models bucket into the secondary site (taken when none exists, and by
  :meth:`Lab.backup`), so restore points carry real timestamps;
- one inference node (``python -m lab.node``) that pulls, verifies and serves the current model;
- ``inventory.yaml`` describing all of it, which drills use when no inventory is given.

State (ports, keys) lives in ``lab.json`` under the root; a second ``up`` reuses it.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import secrets
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.errors import DrillbookError, TargetUnreachable
from harness.integrity import Manifest
from harness.inventory import ResticTarget, S3Target, Secret
from harness.lease import FoundLease
from harness.targets.restic import ResticRepo, Snapshot
from harness.targets.s3 import PartBudget, S3Store
from lab.ceph import CephCluster, DaemonState
from lab.components import LabComponent, components
from lab.netconfig import ModelConfig
from lab.netmodel import generate_model, write_golden
from lab.procs import free_port, live_pid, spawn_detached, write_json

Progress = Callable[[str], None]

MODELS_BUCKET = "drillbook-models"
SECONDARY_BUCKET = "drillbook-secondary"
SAFETY_BUCKET = "drillbook-safety"
MODEL_NAME = "lab-mlp"
ASSET_ID = "lab-mlp-weights"
REGION = "default"
MiB = 1024 * 1024


class LabError(DrillbookError):
    pass


GiB = 1024 * MiB


def osd_size_for(model_size: int) -> int:
    """The OSD's sparse file, from the model size (it only costs disk space as it fills).

    At rest the store holds about 5x the model: two versions in the models bucket, the current
    one in each of the two restic repositories and in the versioned replica bucket. A purge drill
    adds about 5x more until its safety copy and replayed versions are reclaimed (safety copy of
    both versions, the restored copy, the replay), and RGW frees deleted data only after garbage
    collection. 16x plus 4 GiB for the small assets, metadata and BlueStore's own use leaves room
    for a second drill before that; never less than the 8 GiB the lab always had."""
    return max(8 * GiB, 16 * model_size + 4 * GiB)


@dataclass
class LabState:
    mon_port: int
    rgw_port: int
    node_port: int
    model_size: int
    operator_key: str = ""
    operator_secret: str = ""
    backup_key: str = ""
    backup_secret: str = ""
    restic_password: str = ""


def default_root() -> Path:
    env = os.environ.get("DRILLBOOK_LAB_DIR")
    return Path(env) if env else Path.cwd() / ".lab"


class Lab:
    def __init__(self, root: Path, *, model_size: int = 8 * MiB) -> None:
        self.root = root.resolve()
        self.state_path = self.root / "lab.json"
        if self.state_path.exists():
            self.state = LabState(**json.loads(self.state_path.read_text()))
        else:
            self.state = LabState(free_port(), free_port(), free_port(), model_size)
        self.ceph = CephCluster(self.root / "ceph", self.state.mon_port, self.state.rgw_port,
                                osd_size_bytes=osd_size_for(self.state.model_size))
        self.components: list[LabComponent] = components()

    # -- paths and targets -------------------------------------------------------------------

    @property
    def inventory_path(self) -> Path:
        return self.root / "inventory.yaml"

    @property
    def asset_dir(self) -> Path:
        return self.root / "assets" / MODEL_NAME

    @property
    def stage_dir(self) -> Path:
        """Where the backup job mirrors the models bucket before restic reads it."""
        return self.root / "stage" / MODELS_BUCKET / MODEL_NAME

    @property
    def startup_timeout_s(self) -> float:
        """How long a part may take to first serve the model: 120 s, plus 1 s per 4 MiB (a node
        pulls and verifies the whole model; a backup job mirrors and snapshots it)."""
        return 120.0 + self.state.model_size / (4 * MiB)

    @property
    def node_url(self) -> str:
        return f"http://127.0.0.1:{self.state.node_port}"

    @property
    def restic_repository(self) -> str:
        return f"s3:{self.ceph.endpoint}/{SECONDARY_BUCKET}/restic"

    def operator_target(self) -> S3Target:
        s = self.state
        return S3Target("artifact-store", self.ceph.endpoint, REGION, Secret(s.operator_key),
                        Secret(s.operator_secret), drill_safe=True)

    def backup_store_target(self) -> S3Target:
        s = self.state
        return S3Target("backup-account", self.ceph.endpoint, REGION, Secret(s.backup_key),
                        Secret(s.backup_secret), drill_safe=False)

    def restic_target(self) -> ResticTarget:
        s = self.state
        return ResticTarget("secondary-backups", self.restic_repository,
                            Secret(s.restic_password), Secret(s.backup_key),
                            Secret(s.backup_secret), drill_safe=False)

    def restic(self) -> ResticRepo:
        return ResticRepo(self.restic_target(), cache_dir=self.root / "restic-cache")

    def _save(self) -> None:
        write_json(self.state_path, asdict(self.state), private=True)

    # -- up -----------------------------------------------------------------------------------

    def up(self, progress: Progress = print) -> None:
        t0 = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        self._save()
        progress(f"lab: Ceph RGW on {self.ceph.endpoint}")
        self.ceph.up(progress=lambda m: progress(f"  ceph: {m}"))
        s = self.state
        s.operator_key, s.operator_secret = self.ceph.ensure_user("drillbook-operator",
                                                                  "drillbook operator")
        s.backup_key, s.backup_secret = self.ceph.ensure_user("drillbook-backup",
                                                              "backup service account")
        if not s.restic_password:
            s.restic_password = secrets.token_urlsafe(24)
        self._save()
        store = S3Store(self.operator_target())
        store.ensure_bucket(MODELS_BUCKET, versioned=True)
        self._grant_backup_read(store)
        backup_store = S3Store(self.backup_store_target())
        backup_store.ensure_bucket(SECONDARY_BUCKET, versioned=True)
        self._ensure_model(store, progress)
        repo = self.restic()
        if not repo.is_initialized():
            progress("lab: initialising the restic repository on the secondary site")
            repo.init()
        # the first backup (about 25 s of restic at 1 GiB) runs while the node and the
        # components start; nothing they do reads the secondary site's repository
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lab-backup") as pool:
            first_backup = (pool.submit(self.backup, progress)
                            if not repo.snapshots(path=str(self.stage_dir)) else None)
            self._ensure_node(progress)
            for component in self.components:
                component.up(self, progress)
            if first_backup is not None:
                first_backup.result()
        for component in self.components:
            settle = getattr(component, "settle", None)
            if settle is not None:  # work a component started, awaited once all are up
                settle(self, progress)
        self.write_inventory()
        progress(f"lab: up in {time.monotonic() - t0:.1f} s; inventory {self.inventory_path}")

    def _grant_backup_read(self, store: S3Store) -> None:
        policy = {
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": ["arn:aws:iam:::user/drillbook-backup"]},
                "Action": ["s3:GetObject", "s3:GetObjectVersion", "s3:ListBucket",
                           "s3:ListBucketVersions"],
                "Resource": [f"arn:aws:s3:::{MODELS_BUCKET}", f"arn:aws:s3:::{MODELS_BUCKET}/*"],
            }],
        }
        client: Any = store._client
        client.put_bucket_policy(Bucket=MODELS_BUCKET, Policy=json.dumps(policy))

    def _ensure_model(self, store: S3Store, progress: Progress) -> None:
        """Two versions in the bucket: an older model (seed 1) under the current one (seed 2)."""
        prefix = f"{MODEL_NAME}/"
        local = self.asset_dir / "manifest.json"
        if local.exists():
            remote = store.read_bytes(MODELS_BUCKET, prefix + "manifest.json")
            if remote is not None and remote == local.read_bytes():
                return
        if not self._may_regenerate(store, MODELS_BUCKET, prefix, f"the lab model ({prefix})",
                                    self.stage_dir, progress, self.restic()):
            return
        size = self.state.model_size
        progress(f"lab: generating the lab model ({size / MiB:.0f} MiB, two versions)")
        older = self.root / "assets" / f"{MODEL_NAME}-older"
        for directory in (older, self.asset_dir):
            if directory.exists():
                shutil.rmtree(directory)

        def generate(directory: Path, seed: int) -> None:
            generate_model(directory, name=MODEL_NAME, seed=seed, size_bytes=size,
                           shard_bytes=max(MiB, size // 4))

        generate(older, 1)
        # the older version uploads while the current one is generated (one core each), and
        # lands first, so that it is the older version in the bucket's history
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lab-upload") as pool:
            first = pool.submit(self._upload_dir, store, older, prefix)
            generate(self.asset_dir, 2)
            first.result()
        self._upload_dir(store, self.asset_dir, prefix)
        write_golden(self.asset_dir, ModelConfig.load(self.asset_dir / "config.json"),
                     self.asset_dir, count=8)
        shutil.rmtree(older)

    def _may_regenerate(self, store: S3Store, bucket: str, prefix: str, what: str,
                        backup_dir: Path, progress: Progress, repo: ResticRepo | None) -> bool:
        """Never regenerate what a drill holds or what has a backup in ``repo`` (None: no
        backup repository was ever set up) (lab/keep.py)."""
        from harness.blast import Touch
        from lab.keep import may_generate, s3_leases
        leases = s3_leases(store, SAFETY_BUCKET, Touch.s3("artifact-store", bucket, prefix))
        present = bool(store.list_versions(bucket, prefix))
        backup = None
        if repo is not None and repo.is_initialized():
            snaps = repo.snapshots(path=str(backup_dir))
            if snaps:
                backup = f"restic snapshot {snaps[-1].short_id} in {repo.target.repository}"
        return may_generate(what, leases, backup, present, progress)

    def leases(self) -> list[FoundLease]:
        """Every drill lease of the lab's site, held or orphaned (for `lab status`)."""
        from harness.context import Adapters
        from harness.inventory import load_inventory
        from harness.lease import LeaseResolver, list_leases
        if not self.inventory_path.exists():
            return []
        inv = load_inventory(self.inventory_path)
        adapters = Adapters(inv, self.root / "work")
        return list_leases(LeaseResolver(inv, adapters.s3, adapters.postgres, adapters.kube).all_stores())

    @staticmethod
    def _upload_dir(store: S3Store, directory: Path, prefix: str) -> None:
        manifest = Manifest.load(directory / "manifest.json")
        # every shard at once, through the same bounded pipeline the restores use
        budget = PartBudget(8)
        with concurrent.futures.ThreadPoolExecutor(6) as parts, \
                concurrent.futures.ThreadPoolExecutor(4) as files:

            def one(path: str) -> None:
                with (directory / path).open("rb") as fh:
                    store.upload_hashed(MODELS_BUCKET, prefix + path, fh, parts=parts,
                                        budget=budget)

            for done in [files.submit(one, f.path) for f in manifest.files]:
                done.result()
        # the manifest goes last: a reader that sees it can find every file it lists
        store.put_bytes(MODELS_BUCKET, prefix + "manifest.json",
                        (directory / "manifest.json").read_bytes())

    def backup(self, progress: Progress = print) -> Snapshot:
        """The lab's backup job: mirror the model prefix from the store, then restic it into the
        secondary site. Runs with the backup service account's keys."""
        store = S3Store(self.backup_store_target())
        prefix = f"{MODEL_NAME}/"
        if self.stage_dir.exists():
            shutil.rmtree(self.stage_dir)
        self.stage_dir.mkdir(parents=True)
        for key in store.list_keys(MODELS_BUCKET, prefix):
            dest = self.stage_dir / key[len(prefix):]
            dest.parent.mkdir(parents=True, exist_ok=True)
            body = store.open(MODELS_BUCKET, key)
            with dest.open("wb") as fh:
                shutil.copyfileobj(body, fh, 8 * MiB)
        snap = self.restic().backup([self.stage_dir], tags=["drillbook-lab", MODEL_NAME],
                                    host="drillbook-lab")
        progress(f"lab: restic snapshot {snap.short_id} at {snap.time.isoformat()}")
        return snap

    # -- the inference node -------------------------------------------------------------------

    @property
    def node_pid_file(self) -> Path:
        return self.root / "run" / "node.pid"

    def node_pid(self) -> int | None:
        return live_pid(self.node_pid_file, b"lab.node")

    def _ensure_node(self, progress: Progress) -> None:
        if self.node_pid() is None:
            progress(f"lab: starting the inference node on {self.node_url}")
            env = dict(os.environ, AWS_ACCESS_KEY_ID=self.state.operator_key,
                       AWS_SECRET_ACCESS_KEY=self.state.operator_secret)
            pid = spawn_detached(
                [sys.executable, "-m", "lab.node", "--endpoint", self.ceph.endpoint,
                 "--bucket", MODELS_BUCKET, "--prefix", f"{MODEL_NAME}/",
                 "--model-name", MODEL_NAME, "--port", str(self.state.node_port),
                 "--region", REGION, "--cache-dir", str(self.root / "node-cache")],
                log=self.root / "log" / "node.log", env=env,
                cwd=Path(__file__).resolve().parent.parent)
            self.node_pid_file.parent.mkdir(parents=True, exist_ok=True)
            self.node_pid_file.write_text(str(pid))
        limit = self.startup_timeout_s
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            state = self.node_readiness()
            if state == "ready":
                return
            if state.startswith("failed"):
                raise LabError(f"inference node failed to load: {state}")
            if self.node_pid() is None:
                raise LabError(f"inference node exited; see {self.root / 'log' / 'node.log'}")
            time.sleep(0.2)
        raise LabError(f"inference node not ready after {limit:.0f} s")

    def node_readiness(self) -> str:
        import urllib.error
        import urllib.request
        try:
            with urllib.request.urlopen(self.node_url + "/v2/health/ready", timeout=2) as r:
                return "ready" if r.status == 200 else f"status {r.status}"
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            state = str(body.get("state", ""))
            return f"failed: {body.get('error', '')}" if state == "failed" else state or "loading"
        except OSError:
            return "down"

    def stop_node(self) -> None:
        pid = self.node_pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if self.node_pid() is None:
                    return
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it exited between the check and the signal

    # -- inventory, status, down --------------------------------------------------------------

    def write_inventory(self) -> Path:
        s = self.state
        doc: dict[str, Any] = {
            "version": 1,
            "site": "drillbook-lab",
            "targets": {
                "artifact-store": {"kind": "s3", "endpoint": self.ceph.endpoint,
                                   "region": REGION, "access_key": s.operator_key,
                                   "secret_key": s.operator_secret, "drill_safe": True},
                "secondary-backups": {"kind": "restic", "repository": self.restic_repository,
                                      "password": s.restic_password, "access_key": s.backup_key,
                                      "secret_key": s.backup_secret, "drill_safe": False},
                "inference": {"kind": "inference", "url": self.node_url, "model": MODEL_NAME,
                              "drill_safe": True},
            },
            "assets": [{
                "id": ASSET_ID, "tier": 1, "kind": "model-weights", "store": "artifact-store",
                "bucket": MODELS_BUCKET, "prefix": f"{MODEL_NAME}/", "manifest": "manifest.json",
                "backup": "secondary-backups", "backup_path": str(self.stage_dir),
                "served_by": "inference",
                "golden": str((self.asset_dir / "golden.json").relative_to(self.root)),
            }],
            "objectives": {
                "tiers": {1: {"rto_s": 300, "rpo_s": 86400}, 2: {"rto_s": 3600, "rpo_s": 86400}},
            },
            "guards": {"safety_bucket": SAFETY_BUCKET},
            "probe": {"interval_s": 0.2, "detect_timeout_s": 30, "step_timeout_s": 300},
        }
        for component in self.components:
            component.contribute(self, doc)
        header = ("# Written by `drillbook lab up`; holds the lab's own keys (loopback only).\n"
                  "# A real site's inventory should use *_env keys instead of literal secrets.\n")
        self.inventory_path.write_text(header + yaml.safe_dump(doc, sort_keys=False))
        os.chmod(self.inventory_path, 0o600)
        return self.inventory_path

    def status(self) -> list[DaemonState]:
        parts = list(self.ceph.status())
        pid = self.node_pid()
        parts.append(DaemonState("inference-node", pid, pid is not None,
                                 f"{self.node_url} {self.node_readiness()}"))
        for component in self.components:
            parts.extend(component.status(self))
        return parts

    def down(self) -> None:
        for component in reversed(self.components):
            component.down(self)
        self.stop_node()
        self.ceph.down()

    def destroy(self) -> None:
        for component in reversed(self.components):
            component.down(self)
        self.stop_node()
        self.ceph.destroy()
        shutil.rmtree(self.root, ignore_errors=True)

    def env_exports(self) -> str:
        s = self.state
        lines = {
            "AWS_ACCESS_KEY_ID": s.operator_key,
            "AWS_SECRET_ACCESS_KEY": s.operator_secret,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.ceph.endpoint,
            "DRILLBOOK_INVENTORY": str(self.inventory_path),
            "DRILLBOOK_INFERENCE_URL": self.node_url,
            "RESTIC_REPOSITORY": self.restic_repository,
        }
        return "\n".join(f"export {k}={shlex.quote(v)}" for k, v in lines.items())




def require_reachable(store: S3Store) -> None:
    try:
        store.ping()
    except TargetUnreachable as exc:
        raise LabError(f"{exc}; is the lab up? try `drillbook lab up`") from exc
