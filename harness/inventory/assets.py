"""The ``assets:`` section (files in S3 and databases) and the rule that keeps the safety copy
out of every asset's data: ``guards.safety_bucket`` may not be a bucket that holds an asset, its
dumps, its restic repository or its replica on the same store."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.inventory.drills import FIELD as DRILLS_FIELD
from harness.inventory.drills import drills
from harness.inventory.fields import Reader
from harness.inventory.model import (
    ASSET_KINDS,
    DB_ASSET_KINDS,
    Asset,
    InferenceTarget,
    JobTarget,
    LoadBalancerTarget,
    MlflowTarget,
    NodeTarget,
    OrchestratorTarget,
    PostgresTarget,
    ResticTarget,
    S3Target,
    Target,
    kind_name,
)
from harness.inventory.source import Path_
from harness.inventory_kube import ASSET_KIND as KUBE_ASSET_KIND
from harness.inventory_kube import parse_kube_asset


def assets(raw: Any, targets: dict[str, Target], file: Path, r: Reader) -> dict[str, Asset]:
    if not isinstance(raw, list) or not raw:
        raise r.fail(("assets",), "must be a non-empty list of assets")
    out: dict[str, Asset] = {}
    for i, item in enumerate(raw):
        p: Path_ = ("assets", i)
        m = dict(r.mapping(item, p))
        # every kind of asset may carry drill settings: read them here, the kind's own parser
        # reads the rest
        settings = drills(m.pop(DRILLS_FIELD, None), p, r)
        if m.get("kind") == KUBE_ASSET_KIND:
            aid, tier, cluster, work = parse_kube_asset(m, p, targets, r, file)
            a = Asset(aid, tier, KUBE_ASSET_KIND, cluster, "", "", "", None, None, None, None,
                      workload=work)
        elif m.get("kind") in DB_ASSET_KINDS:
            a = _db_asset(m, p, targets, r)
        else:
            a = _asset(m, p, targets, file, r)
        if a.id in out:
            raise r.fail(p + ("id",), f"duplicate asset id {a.id!r}")
        out[a.id] = replace(a, drills=settings) if settings else a
    return out


class _Refs:
    """Reads a field naming a target of a given kind."""

    def __init__(self, m: dict[Any, Any], p: Path_, targets: dict[str, Target], r: Reader,
                 kind: str) -> None:
        self.m, self.p, self.targets, self.r, self.kind = m, p, targets, r, kind

    def __call__(self, key: str, want: type, required: bool) -> str | None:
        name = self.r.name(self.m, key, self.p, what="a target name", required=required)
        if name is None:
            return None
        if name not in self.targets:
            raise self.r.fail(self.p + (key,), f"names target {name!r}, which is not under "
                                               f"targets")
        if not isinstance(self.targets[name], want):
            raise self.r.fail(self.p + (key,), f"target {name!r} is not of the right kind for "
                                               f"{key} (a {self.kind} asset needs a "
                                               f"{kind_name(want)} target, a {want.__name__})")
        return name


def _prefix(m: dict[Any, Any], p: Path_, r: Reader) -> str:
    prefix = r.string(m, "prefix", p)
    if not prefix.endswith("/"):
        raise r.fail(p + ("prefix",), f"must end with '/' (got {prefix!r})")
    return prefix


def _asset(m: dict[Any, Any], p: Path_, targets: dict[str, Target], file: Path,
           r: Reader) -> Asset:
    r.known(m, p, {"id", "tier", "kind", "store", "bucket", "prefix", "manifest", "backup",
                   "backup_path", "served_by", "golden", "balancer", "orchestrator", "nodes",
                   "fallback_golden"})
    asset_id = r.name(m, "id", p, what="an asset id")
    tier = r.tier(m, p)
    kind = r.string(m, "kind", p)
    if kind not in ASSET_KINDS:
        kinds = ", ".join(ASSET_KINDS + DB_ASSET_KINDS)
        raise r.fail(p + ("kind",), f"unknown asset kind {kind!r} (one of: {kinds})")
    ref = _Refs(m, p, targets, r, kind)
    store = ref("store", S3Target, True)
    assert store is not None and asset_id is not None
    backup = ref("backup", ResticTarget, False)
    served_by = ref("served_by", InferenceTarget, False)
    prefix = _prefix(m, p, r)
    backup_path = r.string(m, "backup_path", p, required=False) or None
    if backup and not backup_path:
        raise r.fail(p + ("backup_path",), "is required when backup is given")
    balancer = ref("balancer", LoadBalancerTarget, kind == "inference-service")
    orchestrator = ref("orchestrator", OrchestratorTarget, False)
    nodes = m.get("nodes", [])
    if not isinstance(nodes, list) or (kind == "inference-service" and not nodes):
        raise r.fail(p + ("nodes",), "must be a non-empty list of node target names")
    for i, n in enumerate(nodes):
        if not isinstance(n, str) or not isinstance(targets.get(n), NodeTarget):
            raise r.fail(p + ("nodes", i), f"names {n!r}, which is not a node target")
        if n in nodes[:i]:
            raise r.fail(p + ("nodes", i), f"names node {n!r} twice")
    if kind == "inference-service" and served_by is None:
        raise r.fail(p + ("served_by",), "is required for an inference-service (its frontend)")
    bucket = r.bucket(m, "bucket", p)
    assert bucket is not None
    return Asset(
        id=asset_id, tier=tier, kind=kind, store=store, bucket=bucket, prefix=prefix,
        manifest_key=prefix + r.string(m, "manifest", p, default="manifest.json"),
        backup=backup, backup_path=backup_path, served_by=served_by,
        golden=_golden_path(r, m, p, file, "golden"),
        balancer=balancer, orchestrator=orchestrator, nodes=tuple(nodes),
        fallback_golden=_golden_path(r, m, p, file, "fallback_golden"),
    )


def _golden_path(r: Reader, m: dict[Any, Any], p: Path_, file: Path, key: str) -> Path | None:
    raw = r.string(m, key, p, required=False)
    path = r.beside(file, raw, p + (key,)) if raw else None
    if path is not None and not path.is_file():
        raise r.fail(p + (key,), f"file {path} does not exist")
    return path


def _db_asset(m: dict[Any, Any], p: Path_, targets: dict[str, Target], r: Reader) -> Asset:
    """A database asset: ``store`` names the postgres target holding ``database``; ``backup``
    names the S3 target whose ``bucket``/``prefix`` hold its pg_dump archives; a model registry
    also names the mlflow target serving it in ``served_by``."""
    r.known(m, p, {"id", "tier", "kind", "store", "database", "backup", "bucket", "prefix",
                   "served_by"})
    asset_id = r.name(m, "id", p, what="an asset id")
    kind = r.string(m, "kind", p)
    tier = r.tier(m, p)
    ref = _Refs(m, p, targets, r, kind)
    store = ref("store", PostgresTarget, True)
    backup = ref("backup", S3Target, True)
    served_by = ref("served_by", MlflowTarget, kind == "model-registry")
    assert store is not None and asset_id is not None
    prefix = _prefix(m, p, r)
    bucket = r.bucket(m, "bucket", p)
    assert bucket is not None
    return Asset(
        id=asset_id, tier=tier, kind=kind, store=store, bucket=bucket, prefix=prefix,
        manifest_key="", backup=backup, backup_path=None, served_by=served_by, golden=None,
        database=r.string(m, "database", p),
    )


# --- the safety bucket --------------------------------------------------------------------------

def _store_key(url: str) -> str:
    """The same store, however its URL is written: host and port, lower case."""
    parts = urlsplit(url.strip())
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:  # an unparsable port: compare the text as written
        return parts.netloc.lower()
    return f"{(parts.hostname or '').lower()}:{port}"


def _restic_bucket(repository: str) -> tuple[str, str] | None:
    """(store, bucket) of an ``s3:`` restic repository; None for other back ends."""
    if not repository.startswith("s3:"):
        return None
    url = repository[3:]
    if not url.startswith(("http://", "https://")):
        url = "https://" + url
    parts = urlsplit(url)
    bucket = parts.path.strip("/").split("/", 1)[0]
    return (_store_key(url), bucket) if bucket else None


def _data_locations(assets: dict[str, Asset],
                    targets: dict[str, Target]) -> dict[tuple[str, str], str]:
    """(store, bucket) -> what lives there, for every asset's data and backups."""
    out: dict[tuple[str, str], str] = {}

    def endpoint(name: str | None) -> str | None:
        t = targets.get(name) if name else None
        return _store_key(t.endpoint) if isinstance(t, S3Target) else None

    for a in assets.values():
        if a.database is None:
            where = endpoint(a.store)
            if where:
                out.setdefault((where, a.bucket), f"asset {a.id}'s data")
        else:
            where = endpoint(a.backup)
            if where:
                out.setdefault((where, a.bucket), f"asset {a.id}'s database dumps")
    for t in targets.values():
        if isinstance(t, ResticTarget):
            loc = _restic_bucket(t.repository)
            if loc:
                out.setdefault(loc, f"restic repository {t.name}")
        elif isinstance(t, JobTarget):
            where = endpoint(t.replica_store)
            if where and t.replica_bucket:
                out.setdefault((where, t.replica_bucket), f"job {t.name}'s replica")
            repo = targets.get(t.repository) if t.repository else None
            loc = _restic_bucket(repo.repository) if isinstance(repo, ResticTarget) else None
            if t.bucket and loc:
                out.setdefault((loc[0], t.bucket), f"job {t.name}'s backups")
    return out


def check_safety_bucket(bucket: str, assets: dict[str, Asset], targets: dict[str, Target],
                        r: Reader) -> None:
    """The safety copy goes into ``bucket`` on each S3 asset's store: refuse a bucket that holds
    data or backups of any asset there (a dry run would write into production)."""
    locations = _data_locations(assets, targets)
    for a in assets.values():
        store = targets.get(a.store)
        if a.database is not None or not isinstance(store, S3Target):
            continue
        what = locations.get((_store_key(store.endpoint), bucket))
        if what is not None:
            raise r.fail(("guards", "safety_bucket"),
                         f"bucket {bucket!r} on {store.endpoint} holds {what}: the safety copy "
                         f"must live outside every asset's data and backups")
