"""The inventory's typed records: targets, assets, objectives and the :class:`Inventory` itself.

Everything here is a frozen dataclass built by :mod:`harness.inventory.build` from a validated
file; nothing in this module reads YAML. Secrets are held in :class:`Secret`, whose repr never
shows the value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from harness.hosts.spec import HostSpec
from harness.inventory_kube import KubeTarget, KubeWorkload
from harness.load import SLO, LoadSettings

ASSET_KINDS = ("model-weights", "inference-service", "lora-adapter", "pipeline-config",
               "dataset")
TARGET_KINDS = ("s3", "restic", "inference", "loadbalancer", "node", "orchestrator",
                "rgw-admin", "job")
#: Assets that live in a PostgreSQL database, backed up as pg_dump archives in an S3 bucket.
DB_ASSET_KINDS = ("annotation-db", "model-registry")
DB_TARGET_KINDS = ("postgres", "mlflow")


@dataclass(frozen=True)
class Secret:
    """A credential; printing or logging it shows only that it is set."""

    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__


@dataclass(frozen=True)
class S3Target:
    name: str
    endpoint: str
    region: str
    access_key: Secret
    secret_key: Secret
    drill_safe: bool
    kind: str = "s3"


@dataclass(frozen=True)
class ResticTarget:
    name: str
    repository: str
    password: Secret
    access_key: Secret | None
    secret_key: Secret | None
    drill_safe: bool
    kind: str = "restic"
    #: an AWS-style credentials file read at every call (what the backup job reads), so a rotated
    #: key takes effect without editing the inventory; overrides access_key/secret_key
    credentials_file: Path | None = None


@dataclass(frozen=True)
class InferenceTarget:
    name: str
    url: str
    model: str
    drill_safe: bool
    kind: str = "inference"


@dataclass(frozen=True)
class PostgresTarget:
    name: str
    host: str
    port: int
    user: str
    password: Secret
    drill_safe: bool
    kind: str = "postgres"


@dataclass(frozen=True)
class MlflowTarget:
    name: str
    url: str
    drill_safe: bool
    kind: str = "mlflow"


@dataclass(frozen=True)
class LoadBalancerTarget:
    """An HAProxy backend driven through its runtime API socket."""

    name: str
    socket: Path
    backend: str
    frontend: str | None  # the inference target clients reach through it
    drill_safe: bool
    kind: str = "loadbalancer"


@dataclass(frozen=True)
class NodeTarget:
    """A serving node: its pid file (the node's process group leader) and the command that
    powers it back on."""

    name: str
    pidfile: Path
    power_on: tuple[str, ...]
    drill_safe: bool
    kind: str = "node"


@dataclass(frozen=True)
class OrchestratorTarget:
    """Where the orchestrator publishes node and replica placement (read-only)."""

    name: str
    state_file: Path
    drill_safe: bool = False
    kind: str = "orchestrator"


@dataclass(frozen=True)
class RgwAdminTarget:
    """Ceph RGW administration through ``radosgw-admin -c conf`` (users, keys, quotas)."""

    name: str
    conf: Path
    drill_safe: bool
    binary: str = "radosgw-admin"
    kind: str = "rgw-admin"


@dataclass(frozen=True)
class JobTarget:
    """A periodic job (backup or replication): how to start, stop and run it once, where it
    records each run, and where it reads its credentials."""

    name: str
    role: str  # "backup" | "replication"
    status_file: Path
    period_s: float
    start_command: tuple[str, ...]
    stop_command: tuple[str, ...]
    run_command: tuple[str, ...]
    drill_safe: bool
    credentials_file: Path | None = None
    service_account: str | None = None
    admin: str | None = None  # rgw-admin target managing service_account
    repository: str | None = None  # restic target the job writes (role backup)
    bucket: str | None = None  # the bucket the job writes into (quota faults)
    replica_store: str | None = None  # s3 target of the replica (role replication)
    replica_bucket: str | None = None
    keep_last: int | None = None  # the retention policy (restic forget --keep-last)
    kind: str = "job"


Target = (S3Target | ResticTarget | InferenceTarget | PostgresTarget | MlflowTarget
          | LoadBalancerTarget | NodeTarget | OrchestratorTarget | RgwAdminTarget | JobTarget
          | KubeTarget)


@dataclass(frozen=True)
class DrillParam:
    """One scenario parameter an asset's ``drills:`` entry gives, with where it was written
    (the scenario's declaration checks it only when that scenario runs)."""

    name: str
    value: str | int | float | bool
    line: int
    field: str


@dataclass(frozen=True)
class AssetDrill:
    """An asset's settings for one scenario: ``drills: {scenario: {params: {...}}}``."""

    scenario: str
    params: tuple[DrillParam, ...] = ()


@dataclass(frozen=True)
class Asset:
    id: str
    tier: int
    kind: str
    store: str
    bucket: str
    prefix: str
    manifest_key: str
    backup: str | None
    backup_path: str | None
    served_by: str | None
    golden: Path | None
    #: for database assets (annotation-db, model-registry): the database's name on ``store``
    database: str | None = None
    # inference-service assets: the fleet behind the endpoint
    balancer: str | None = None
    orchestrator: str | None = None
    nodes: tuple[str, ...] = ()
    fallback_golden: Path | None = None  # golden file of the degraded (fallback) model
    workload: KubeWorkload | None = None  # kube-inference-service assets (store: the cluster)
    #: per-scenario settings (parameters) for drills of this asset
    drills: tuple[AssetDrill, ...] = ()

    def drill(self, scenario: str) -> AssetDrill | None:
        return next((d for d in self.drills if d.scenario == scenario), None)


@dataclass(frozen=True)
class Targets:
    rto_s: float
    rpo_s: float
    source: str


@dataclass(frozen=True)
class ExerciseSpec:
    """The optional ``exercise:`` section: who takes part and why; each field may be absent."""

    title: str | None = None
    type: str | None = None
    reason: str | None = None
    planned_date: str | None = None
    participants: tuple[tuple[str, str], ...] = ()
    approver: str | None = None


@dataclass(frozen=True)
class EvidenceSettings:
    """The optional ``evidence:`` section: key files (paths, never the keys themselves)."""

    signing_key: Path | None = None
    public_key: Path | None = None


@dataclass(frozen=True)
class Inventory:
    path: Path
    site: str
    targets: dict[str, Target]
    assets: dict[str, Asset]
    tier_objectives: dict[int, dict[str, float]]
    asset_objectives: dict[str, dict[str, float]]
    safety_bucket: str
    probe_interval_s: float
    detect_timeout_s: float
    step_timeout_s: float
    slo: SLO = field(default_factory=SLO)
    load: LoadSettings = field(default_factory=LoadSettings)
    exercise: ExerciseSpec = field(default_factory=ExerciseSpec)
    evidence: EvidenceSettings = field(default_factory=EvidenceSettings)
    #: the machines behind the targets, and what to check on them (harness/hosts)
    hosts: dict[str, HostSpec] = field(default_factory=dict)

    def objectives_for(self, asset: Asset) -> Targets:
        """RTO/RPO targets for an asset: its own override, else its tier's, and where they came from."""
        tier = self.tier_objectives.get(asset.tier, {})
        own = self.asset_objectives.get(asset.id, {})
        rto = own.get("rto_s", tier.get("rto_s"))
        rpo = own.get("rpo_s", tier.get("rpo_s"))
        if rto is None or rpo is None:
            # validation guarantees a value; this is a programming error, not bad input
            raise AssertionError(f"no objectives for asset {asset.id}")
        src = []
        src.append(f"objectives.assets.{asset.id}" if "rto_s" in own else f"objectives.tiers.{asset.tier}")
        return Targets(float(rto), float(rpo), ", ".join(src))

    def s3(self, name: str) -> S3Target:
        t = self.targets[name]
        assert isinstance(t, S3Target)
        return t

    def restic(self, name: str) -> ResticTarget:
        t = self.targets[name]
        assert isinstance(t, ResticTarget)
        return t

    def inference(self, name: str) -> InferenceTarget:
        t = self.targets[name]
        assert isinstance(t, InferenceTarget)
        return t

    def postgres(self, name: str) -> PostgresTarget:
        t = self.targets[name]
        assert isinstance(t, PostgresTarget)
        return t

    def mlflow(self, name: str) -> MlflowTarget:
        t = self.targets[name]
        assert isinstance(t, MlflowTarget)
        return t

    def loadbalancer(self, name: str) -> LoadBalancerTarget:
        t = self.targets[name]
        assert isinstance(t, LoadBalancerTarget)
        return t

    def node(self, name: str) -> NodeTarget:
        t = self.targets[name]
        assert isinstance(t, NodeTarget)
        return t

    def orchestrator(self, name: str) -> OrchestratorTarget:
        t = self.targets[name]
        assert isinstance(t, OrchestratorTarget)
        return t

    def rgw_admin(self, name: str) -> RgwAdminTarget:
        t = self.targets[name]
        assert isinstance(t, RgwAdminTarget)
        return t

    def kube(self, name: str) -> KubeTarget:
        t = self.targets[name]
        assert isinstance(t, KubeTarget)
        return t

    def job(self, name: str) -> JobTarget:
        t = self.targets[name]
        assert isinstance(t, JobTarget)
        return t

    def jobs(self, role: str) -> list[JobTarget]:
        return [t for t in self.targets.values() if isinstance(t, JobTarget) and t.role == role]


def kind_name(cls: type) -> str:
    """The ``kind:`` an inventory gives for a target class (``S3Target`` -> ``s3``)."""
    return str(vars(cls).get("kind", cls.__name__))
