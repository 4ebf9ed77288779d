"""The site inventory: what exists, which tier it is, where its backups are, what must hold.

One YAML file describes a site. :func:`load_inventory` validates all of it before anything runs
and raises :class:`~harness.errors.InventoryError` naming the file, the line and the field, so a
typo never starts half a drill. Secrets may be given literally (the lab's own inventory does) or
through ``*_env`` keys naming environment variables (what a real site should do); either way they
are held in :class:`Secret`, whose repr never shows the value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.errors import InventoryError
from harness.inventory_kube import ASSET_KIND as KUBE_ASSET_KIND
from harness.inventory_kube import KIND as KUBE_KIND
from harness.inventory_kube import KubeTarget, KubeWorkload, parse_kube_asset, parse_kube_target
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

    def job(self, name: str) -> JobTarget:
        t = self.targets[name]
        assert isinstance(t, JobTarget)
        return t

    def kube(self, name: str) -> KubeTarget:
        t = self.targets[name]
        assert isinstance(t, KubeTarget)
        return t

    def jobs(self, role: str) -> list[JobTarget]:
        return [t for t in self.targets.values() if isinstance(t, JobTarget) and t.role == role]


# --- YAML with line numbers ---------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def _line_map(node: yaml.Node, path: Path_, lines: dict[Path_, int], file: Path) -> None:
    lines[tuple(str(x) for x in path)] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                raise InventoryError(file, key_node.start_mark.line + 1, _dotted(path + (key,)),
                                     "duplicate key")
            seen.add(key)
            _line_map(value_node, path + (key,), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_map(item, path + (i,), lines, file)


def _dotted(path: Path_) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + p
    return out or "(top level)"


class _Reader:
    """Typed access to the parsed YAML that turns every mistake into a located InventoryError."""

    def __init__(self, file: Path, lines: dict[Path_, int]) -> None:
        self.file = file
        self.lines = lines

    def line(self, path: Path_) -> int:
        key = tuple(str(x) for x in path)
        while key and key not in self.lines:
            key = key[:-1]
        return self.lines.get(key, 1)

    def fail(self, path: Path_, message: str) -> InventoryError:
        return InventoryError(self.file, self.line(path), _dotted(path), message)

    def mapping(self, value: Any, path: Path_) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be a mapping (got {_kind(value)})")
        return value

    def known(self, m: dict[str, Any], path: Path_, allowed: set[str]) -> None:
        for key in m:
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                raise self.fail(path + (key,), f"unknown field (allowed here: {hint})")

    def req(self, m: dict[str, Any], key: str, path: Path_) -> Any:
        if key not in m or m[key] is None:
            raise self.fail(path + (key,), "is required")
        return m[key]

    def string(self, m: dict[str, Any], key: str, path: Path_, *, default: str | None = None,
               required: bool = True) -> str:
        if key not in m or m[key] is None:
            if default is not None or not required:
                return default or ""
            raise self.fail(path + (key,), "is required")
        v = m[key]
        if not isinstance(v, str) or not v.strip():
            raise self.fail(path + (key,), f"must be a non-empty string (got {_kind(v)})")
        return v

    def number(self, m: dict[str, Any], key: str, path: Path_, default: float | None = None) -> float:
        if key not in m:
            if default is None:
                raise self.fail(path + (key,), "is required")
            return default
        v = m[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise self.fail(path + (key,), f"must be a positive number of seconds (got {v!r})")
        return float(v)

    def boolean(self, m: dict[str, Any], key: str, path: Path_, default: bool = False) -> bool:
        v = m.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(path + (key,), f"must be true or false (got {v!r})")
        return v

    def secret(self, m: dict[str, Any], key: str, path: Path_, required: bool = True) -> Secret | None:
        env_key = f"{key}_env"
        if key in m and env_key in m:
            raise self.fail(path + (key,), f"give either {key} or {env_key}, not both")
        if env_key in m:
            var = self.string(m, env_key, path)
            if var not in os.environ:
                raise self.fail(path + (env_key,),
                                f"environment variable {var} is not set")
            return Secret(os.environ[var])
        if key in m:
            return Secret(self.string(m, key, path))
        if required:
            raise self.fail(path + (key,), f"is required (or {env_key})")
        return None


def _kind(v: Any) -> str:
    if v is None:
        return "nothing"
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(v), type(v).__name__)


def load_inventory(path: Path | str) -> Inventory:
    """Parse and validate an inventory file. Raises InventoryError; never returns half an inventory."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise InventoryError(file, 0, "(file)", f"cannot read: {exc.strerror or exc}") from exc
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise InventoryError(file, line, "(syntax)", f"not valid YAML: {exc.problem}") from exc
    lines: dict[Path_, int] = {}
    if node is not None:
        _line_map(node, (), lines, file)
    return _build(file, data, _Reader(file, lines))


def _build(file: Path, data: Any, r: _Reader) -> Inventory:
    top = r.mapping(data, ())
    r.known(top, (), {"version", "site", "targets", "assets", "objectives", "guards", "probe",
                      "slo", "load", "exercise", "evidence"})
    if top.get("version") != 1:
        raise r.fail(("version",), f"must be 1 (got {top.get('version')!r})")
    site = r.string(top, "site", ())
    targets = _targets(r.mapping(r.req(top, "targets", ()), ("targets",)), r)
    raw_assets = r.req(top, "assets", ())
    if not isinstance(raw_assets, list) or not raw_assets:
        raise r.fail(("assets",), "must be a non-empty list of assets")
    assets: dict[str, Asset] = {}
    for i, raw in enumerate(raw_assets):
        a = _asset(r.mapping(raw, ("assets", i)), ("assets", i), targets, file, r)
        if a.id in assets:
            raise r.fail(("assets", i, "id"), f"duplicate asset id {a.id!r}")
        assets[a.id] = a
    tiers, per_asset = _objectives(top, assets, r)
    guards = r.mapping(top.get("guards", {}), ("guards",))
    r.known(guards, ("guards",), {"safety_bucket"})
    probe = r.mapping(top.get("probe", {}), ("probe",))
    r.known(probe, ("probe",), {"interval_s", "detect_timeout_s", "step_timeout_s"})
    return Inventory(
        path=file,
        site=site,
        targets=targets,
        assets=assets,
        tier_objectives=tiers,
        asset_objectives=per_asset,
        safety_bucket=r.string(guards, "safety_bucket", ("guards",), default="drillbook-safety"),
        probe_interval_s=r.number(probe, "interval_s", ("probe",), 0.5),
        detect_timeout_s=r.number(probe, "detect_timeout_s", ("probe",), 120.0),
        step_timeout_s=r.number(probe, "step_timeout_s", ("probe",), 600.0),
        slo=_slo(top, r),
        load=_load(top, r),
        exercise=_exercise(top, r),
        evidence=_evidence_settings(top, file, r),
    )


def _fraction(r: _Reader, m: dict[str, Any], key: str, p: Path_, default: float, *,
              zero_ok: bool) -> float:
    if key not in m:
        return default
    v = m[key]
    number = not isinstance(v, bool) and isinstance(v, (int, float))
    if not number or not ((v >= 0) if zero_ok else (v > 0)) or v > 1:
        span = "[0, 1]" if zero_ok else "(0, 1]"
        raise r.fail(p + (key,), f"must be a fraction in {span} (got {v!r})")
    return float(v)


def _count(r: _Reader, m: dict[str, Any], key: str, p: Path_, default: int, *,
           minimum: int) -> int:
    if key not in m:
        return default
    v = m[key]
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise r.fail(p + (key,), f"must be a whole number >= {minimum} (got {v!r})")
    return v


def _positive(r: _Reader, m: dict[str, Any], key: str, p: Path_, default: float) -> float:
    if key not in m:
        return default
    v = m[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        raise r.fail(p + (key,), f"must be a positive number (got {v!r})")
    return float(v)


def _slo(top: dict[str, Any], r: _Reader) -> SLO:
    """The endpoint's service level: judged per second of load (see harness.load)."""
    p: Path_ = ("slo",)
    m = r.mapping({} if top.get("slo") is None else top["slo"], p)
    r.known(m, p, {"error_rate", "p95_ms", "throughput_ratio", "sustain_s"})
    d = SLO()
    return SLO(
        max_error_rate=_fraction(r, m, "error_rate", p, d.max_error_rate, zero_ok=True),
        max_p95_ms=_positive(r, m, "p95_ms", p, d.max_p95_ms),
        min_throughput_ratio=_fraction(r, m, "throughput_ratio", p, d.min_throughput_ratio,
                                       zero_ok=False),
        sustain_s=r.number(m, "sustain_s", p, d.sustain_s),
    )


def _load(top: dict[str, Any], r: _Reader) -> LoadSettings:
    p: Path_ = ("load",)
    m = r.mapping({} if top.get("load") is None else top["load"], p)
    r.known(m, p, {"users", "spawn_rate", "baseline_s", "acceptance_s", "workers"})
    d = LoadSettings()
    users = _count(r, m, "users", p, d.users, minimum=1)
    workers = _count(r, m, "workers", p, d.workers, minimum=0)
    if workers > users:
        raise r.fail(p + ("workers",), f"{workers} workers for {users} users would leave "
                     f"workers idle (at most users)")
    return LoadSettings(
        users=users,
        spawn_rate=_positive(r, m, "spawn_rate", p, d.spawn_rate),
        baseline_s=r.number(m, "baseline_s", p, d.baseline_s),
        acceptance_s=r.number(m, "acceptance_s", p, d.acceptance_s),
        workers=workers,
    )


def _exercise(top: dict[str, Any], r: _Reader) -> ExerciseSpec:
    p: Path_ = ("exercise",)
    m = r.mapping(top.get("exercise", {}), p)
    r.known(m, p, {"title", "type", "reason", "planned_date", "participants", "approver"})

    def opt(key: str) -> str | None:
        v = m.get(key)
        if v is None:
            return None
        if key == "planned_date" and hasattr(v, "isoformat"):  # YAML reads 2026-01-31 as a date
            return str(v.isoformat())
        return r.string(m, key, p)

    people: list[tuple[str, str]] = []
    raw = m.get("participants", [])
    if not isinstance(raw, list):
        raise r.fail(p + ("participants",), "must be a list of {name, role}")
    for i, item in enumerate(raw):
        q = p + ("participants", i)
        entry = r.mapping(item, q)
        r.known(entry, q, {"name", "role"})
        people.append((r.string(entry, "name", q), r.string(entry, "role", q)))
    return ExerciseSpec(opt("title"), opt("type"), opt("reason"), opt("planned_date"),
                        tuple(people), opt("approver"))


def _evidence_settings(top: dict[str, Any], file: Path, r: _Reader) -> EvidenceSettings:
    p: Path_ = ("evidence",)
    m = r.mapping(top.get("evidence", {}), p)
    r.known(m, p, {"signing_key", "public_key"})

    def path(key: str) -> Path | None:
        v = r.string(m, key, p, required=False)
        return (file.parent / v).resolve() if v else None

    return EvidenceSettings(path("signing_key"), path("public_key"))


def _targets(raw: dict[str, Any], r: _Reader) -> dict[str, Target]:
    out: dict[str, Target] = {}
    for name, spec in raw.items():
        p: Path_ = ("targets", name)
        m = r.mapping(spec, p)
        kind = r.string(m, "kind", p)
        safe = r.boolean(m, "drill_safe", p)
        if kind == "s3":
            r.known(m, p, {"kind", "endpoint", "region", "access_key", "access_key_env",
                           "secret_key", "secret_key_env", "drill_safe"})
            endpoint = r.string(m, "endpoint", p)
            if not endpoint.startswith(("http://", "https://")):
                raise r.fail(p + ("endpoint",), f"must be an http(s) URL (got {endpoint!r})")
            ak, sk = r.secret(m, "access_key", p), r.secret(m, "secret_key", p)
            assert ak is not None and sk is not None
            out[name] = S3Target(name, endpoint, r.string(m, "region", p, default="default"),
                                 ak, sk, safe)
        elif kind == "restic":
            r.known(m, p, {"kind", "repository", "password", "password_env", "access_key",
                           "access_key_env", "secret_key", "secret_key_env", "drill_safe",
                           "credentials_file"})
            pw = r.secret(m, "password", p)
            assert pw is not None
            creds = r.string(m, "credentials_file", p, required=False)
            out[name] = ResticTarget(name, r.string(m, "repository", p), pw,
                                     r.secret(m, "access_key", p, required=False),
                                     r.secret(m, "secret_key", p, required=False), safe,
                                     credentials_file=Path(creds) if creds else None)
        elif kind == "inference":
            r.known(m, p, {"kind", "url", "model", "drill_safe"})
            url = r.string(m, "url", p)
            if not url.startswith(("http://", "https://")):
                raise r.fail(p + ("url",), f"must be an http(s) URL (got {url!r})")
            out[name] = InferenceTarget(name, url.rstrip("/"), r.string(m, "model", p), safe)
        elif kind in DB_TARGET_KINDS:
            out[name] = _db_target(name, kind, m, p, safe, r)
        elif kind == "loadbalancer":
            r.known(m, p, {"kind", "socket", "backend", "frontend", "drill_safe"})
            out[name] = LoadBalancerTarget(name, Path(r.string(m, "socket", p)),
                                           r.string(m, "backend", p),
                                           r.string(m, "frontend", p, required=False) or None,
                                           safe)
        elif kind == "node":
            r.known(m, p, {"kind", "pidfile", "power_on", "drill_safe"})
            cmd = m.get("power_on", [])
            if not isinstance(cmd, list) or not all(isinstance(x, str) and x for x in cmd):
                raise r.fail(p + ("power_on",), "must be a command as a list of strings")
            out[name] = NodeTarget(name, Path(r.string(m, "pidfile", p)), tuple(cmd), safe)
        elif kind == "orchestrator":
            r.known(m, p, {"kind", "state_file", "drill_safe"})
            out[name] = OrchestratorTarget(name, Path(r.string(m, "state_file", p)), safe)
        elif kind == "rgw-admin":
            r.known(m, p, {"kind", "conf", "binary", "drill_safe"})
            out[name] = RgwAdminTarget(name, Path(r.string(m, "conf", p)), safe,
                                       r.string(m, "binary", p, default="radosgw-admin"))
        elif kind == "job":
            out[name] = _job(name, m, p, safe, r)
        elif kind == KUBE_KIND:
            out[name] = parse_kube_target(name, m, p, safe, r.file, r)
        else:
            kinds = ", ".join(TARGET_KINDS + DB_TARGET_KINDS + (KUBE_KIND,))
            raise r.fail(p + ("kind",), f"unknown target kind {kind!r} (one of: {kinds})")
    return out


def _job(name: str, m: dict[str, Any], p: Path_, safe: bool, r: _Reader) -> JobTarget:
    opt = ("credentials_file", "service_account", "admin", "repository", "bucket",
           "replica_store", "replica_bucket")
    r.known(m, p, {"kind", "role", "status_file", "period_s", "start_command", "stop_command",
                   "run_command", "drill_safe", "keep_last", *opt})
    role = r.string(m, "role", p)
    if role not in ("backup", "replication"):
        raise r.fail(p + ("role",), f"must be backup or replication (got {role!r})")

    def argv(key: str) -> tuple[str, ...]:
        v = r.req(m, key, p)
        if not isinstance(v, list) or not v or not all(isinstance(x, str) and x for x in v):
            raise r.fail(p + (key,), "must be a non-empty list of strings (an argv)")
        return tuple(v)

    keep = m.get("keep_last")
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
        raise r.fail(p + ("keep_last",), f"must be a positive integer (got {keep!r})")
    x = {k: r.string(m, k, p, required=False) or None for k in opt}
    creds = x["credentials_file"]
    return JobTarget(name, role, Path(r.string(m, "status_file", p)),
                     r.number(m, "period_s", p), argv("start_command"), argv("stop_command"),
                     argv("run_command"), safe, credentials_file=Path(creds) if creds else None,
                     service_account=x["service_account"], admin=x["admin"],
                     repository=x["repository"], bucket=x["bucket"],
                     replica_store=x["replica_store"], replica_bucket=x["replica_bucket"],
                     keep_last=keep)


def _asset(m: dict[str, Any], p: Path_, targets: dict[str, Target], file: Path, r: _Reader) -> Asset:
    if m.get("kind") in DB_ASSET_KINDS:
        return _db_asset(m, p, targets, r)
    if m.get("kind") == KUBE_ASSET_KIND:
        aid, tier, cluster, work = parse_kube_asset(m, p, targets, r)
        return Asset(aid, tier, KUBE_ASSET_KIND, cluster, "", "", "", None, None, None, None,
                     workload=work)
    r.known(m, p, {"id", "tier", "kind", "store", "bucket", "prefix", "manifest", "backup",
                   "backup_path", "served_by", "golden", "balancer", "orchestrator", "nodes",
                   "fallback_golden"})
    tier = r.req(m, "tier", p)
    if isinstance(tier, bool) or tier not in (1, 2, 3):
        raise r.fail(p + ("tier",), f"must be 1, 2 or 3 (got {tier!r})")
    kind = r.string(m, "kind", p)
    if kind not in ASSET_KINDS:
        kinds = ", ".join(ASSET_KINDS + DB_ASSET_KINDS)
        raise r.fail(p + ("kind",), f"unknown asset kind {kind!r} (one of: {kinds})")

    def ref(key: str, want: type, required: bool) -> str | None:
        name = r.string(m, key, p, required=required) or None
        if name is None:
            return None
        if name not in targets:
            raise r.fail(p + (key,), f"names target {name!r}, which is not under targets")
        if not isinstance(targets[name], want):
            raise r.fail(p + (key,), f"target {name!r} is not of the right kind for {key}")
        return name

    store = ref("store", S3Target, True)
    assert store is not None
    backup = ref("backup", ResticTarget, False)
    served_by = ref("served_by", InferenceTarget, False)
    prefix = r.string(m, "prefix", p)
    if not prefix.endswith("/"):
        raise r.fail(p + ("prefix",), f"must end with '/' (got {prefix!r})")
    golden_raw = r.string(m, "golden", p, required=False)
    golden = (file.parent / golden_raw).resolve() if golden_raw else None
    if golden is not None and not golden.is_file():
        raise r.fail(p + ("golden",), f"file {golden} does not exist")
    backup_path = r.string(m, "backup_path", p, required=False) or None
    if backup and not backup_path:
        raise r.fail(p + ("backup_path",), "is required when backup is given")
    balancer = ref("balancer", LoadBalancerTarget, kind == "inference-service")
    orchestrator = ref("orchestrator", OrchestratorTarget, False)
    nodes = m.get("nodes", [])
    if not isinstance(nodes, list) or (kind == "inference-service" and not nodes):
        raise r.fail(p + ("nodes",), "must be a non-empty list of node target names")
    for i, n in enumerate(nodes):
        if not isinstance(targets.get(n), NodeTarget):
            raise r.fail(p + ("nodes", i), f"names {n!r}, which is not a node target")
    if kind == "inference-service" and served_by is None:
        raise r.fail(p + ("served_by",), "is required for an inference-service (its frontend)")
    return Asset(
        id=r.string(m, "id", p), tier=int(tier), kind=kind, store=store,
        bucket=r.string(m, "bucket", p), prefix=prefix,
        manifest_key=prefix + r.string(m, "manifest", p, default="manifest.json"),
        backup=backup, backup_path=backup_path, served_by=served_by, golden=golden,
        balancer=balancer, orchestrator=orchestrator, nodes=tuple(nodes),
        fallback_golden=_golden_path(r, m, p, file, "fallback_golden"),
    )


def _golden_path(r: _Reader, m: dict[str, Any], p: Path_, file: Path, key: str) -> Path | None:
    raw = r.string(m, key, p, required=False)
    path = (file.parent / raw).resolve() if raw else None
    if path is not None and not path.is_file():
        raise r.fail(p + (key,), f"file {path} does not exist")
    return path


def _objectives(top: dict[str, Any], assets: dict[str, Asset],
                r: _Reader) -> tuple[dict[int, dict[str, float]], dict[str, dict[str, float]]]:
    obj = r.mapping(r.req(top, "objectives", ()), ("objectives",))
    r.known(obj, ("objectives",), {"tiers", "assets"})
    tiers: dict[int, dict[str, float]] = {}
    raw_tiers: dict[Any, Any] = r.mapping(obj.get("tiers", {}), ("objectives", "tiers"))
    for key, spec in raw_tiers.items():
        p: Path_ = ("objectives", "tiers", str(key))
        if key not in (1, 2, 3):
            raise r.fail(p, "tier must be 1, 2 or 3")
        m = r.mapping(spec, p)
        r.known(m, p, {"rto_s", "rpo_s"})
        tiers[key] = {k: r.number(m, k, p) for k in ("rto_s", "rpo_s")}
    per: dict[str, dict[str, float]] = {}
    for key, spec in r.mapping(obj.get("assets", {}), ("objectives", "assets")).items():
        p = ("objectives", "assets", key)
        if key not in assets:
            raise r.fail(p, f"names asset {key!r}, which is not under assets")
        m = r.mapping(spec, p)
        r.known(m, p, {"rto_s", "rpo_s"})
        per[key] = {k: r.number(m, k, p) for k in ("rto_s", "rpo_s") if k in m}
    for i, a in enumerate(assets.values()):
        have = {**tiers.get(a.tier, {}), **per.get(a.id, {})}
        for k in ("rto_s", "rpo_s"):
            if k not in have:
                raise r.fail(("assets", i, "tier"),
                             f"asset {a.id!r} has no {k} target: add objectives.tiers.{a.tier}.{k} "
                             f"or objectives.assets.{a.id}.{k}")
    return tiers, per


# --- database targets and assets ----------------------------------------------------------------


def _db_target(name: str, kind: str, m: dict[str, Any], p: Path_, safe: bool,
               r: _Reader) -> Target:
    if kind == "postgres":
        r.known(m, p, {"kind", "host", "port", "user", "password", "password_env", "drill_safe"})
        port = r.req(m, "port", p)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise r.fail(p + ("port",), f"must be a TCP port number (got {port!r})")
        pw = r.secret(m, "password", p)
        assert pw is not None
        return PostgresTarget(name, r.string(m, "host", p), port, r.string(m, "user", p), pw,
                              safe)
    r.known(m, p, {"kind", "url", "drill_safe"})
    url = r.string(m, "url", p)
    if not url.startswith(("http://", "https://")):
        raise r.fail(p + ("url",), f"must be an http(s) URL (got {url!r})")
    return MlflowTarget(name, url.rstrip("/"), safe)


def _db_asset(m: dict[str, Any], p: Path_, targets: dict[str, Target], r: _Reader) -> Asset:
    """A database asset: ``store`` names the postgres target holding ``database``; ``backup``
    names the S3 target whose ``bucket``/``prefix`` hold its pg_dump archives; a model registry
    also names the mlflow target serving it in ``served_by``."""
    r.known(m, p, {"id", "tier", "kind", "store", "database", "backup", "bucket", "prefix",
                   "served_by"})
    kind = r.string(m, "kind", p)
    tier = r.req(m, "tier", p)
    if isinstance(tier, bool) or tier not in (1, 2, 3):
        raise r.fail(p + ("tier",), f"must be 1, 2 or 3 (got {tier!r})")

    def ref(key: str, want: type, required: bool) -> str | None:
        name = r.string(m, key, p, required=required) or None
        if name is None:
            return None
        if name not in targets:
            raise r.fail(p + (key,), f"names target {name!r}, which is not under targets")
        if not isinstance(targets[name], want):
            raise r.fail(p + (key,), f"target {name!r} is not of the right kind for {key} "
                                     f"(a {kind} asset needs a {want.__name__})")
        return name

    store = ref("store", PostgresTarget, True)
    backup = ref("backup", S3Target, True)
    served_by = ref("served_by", MlflowTarget, kind == "model-registry")
    assert store is not None
    prefix = r.string(m, "prefix", p)
    if not prefix.endswith("/"):
        raise r.fail(p + ("prefix",), f"must end with '/' (got {prefix!r})")
    return Asset(
        id=r.string(m, "id", p), tier=tier, kind=kind, store=store,
        bucket=r.string(m, "bucket", p), prefix=prefix, manifest_key="", backup=backup,
        backup_path=None, served_by=served_by, golden=None, database=r.string(m, "database", p),
    )
