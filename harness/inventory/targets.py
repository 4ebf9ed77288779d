"""The ``targets:`` section: one typed record per system, and every name one target gives of
another (a job's ``admin``, ``repository`` and ``replica_store``, a load balancer's
``frontend``) checked to exist and to be of the right kind once all targets are read."""

from __future__ import annotations

from typing import Any

from harness.inventory.fields import Reader
from harness.inventory.model import (
    DB_TARGET_KINDS,
    TARGET_KINDS,
    InferenceTarget,
    JobTarget,
    LoadBalancerTarget,
    MlflowTarget,
    NodeTarget,
    OrchestratorTarget,
    PostgresTarget,
    ResticTarget,
    RgwAdminTarget,
    S3Target,
    Target,
    kind_name,
)
from harness.inventory.source import Path_
from harness.inventory_kube import KINDS as KUBE_KINDS
from harness.inventory_kube import parse_kube_target


def targets(raw: dict[Any, Any], r: Reader) -> dict[str, Target]:
    out: dict[str, Target] = {}
    for name, spec in raw.items():
        p: Path_ = ("targets", str(name))
        r.check_name(name, p, "a target name")
        out[name] = _target(name, r.mapping(spec, p), p, r)
    _check_references(out, r)
    return out


def _url(r: Reader, m: dict[Any, Any], key: str, p: Path_) -> str:
    url = r.string(m, key, p)
    if not url.startswith(("http://", "https://")) or any(c.isspace() for c in url):
        raise r.fail(p + (key,), f"must be an http(s) URL (got {url!r})")
    return url


def _target(name: str, m: dict[Any, Any], p: Path_, r: Reader) -> Target:
    kind = r.string(m, "kind", p)
    safe = r.boolean(m, "drill_safe", p)
    if kind == "s3":
        r.known(m, p, {"kind", "endpoint", "region", "access_key", "access_key_env",
                       "secret_key", "secret_key_env", "drill_safe"})
        endpoint = _url(r, m, "endpoint", p)
        ak, sk = r.secret(m, "access_key", p), r.secret(m, "secret_key", p)
        assert ak is not None and sk is not None
        return S3Target(name, endpoint, r.string(m, "region", p, default="default"), ak, sk, safe)
    if kind == "restic":
        r.known(m, p, {"kind", "repository", "password", "password_env", "access_key",
                       "access_key_env", "secret_key", "secret_key_env", "drill_safe",
                       "credentials_file"})
        pw = r.secret(m, "password", p)
        assert pw is not None
        return ResticTarget(name, r.string(m, "repository", p), pw,
                            r.secret(m, "access_key", p, required=False),
                            r.secret(m, "secret_key", p, required=False), safe,
                            credentials_file=r.path(m, "credentials_file", p, required=False))
    if kind == "inference":
        r.known(m, p, {"kind", "url", "model", "drill_safe"})
        return InferenceTarget(name, _url(r, m, "url", p).rstrip("/"), r.string(m, "model", p),
                               safe)
    if kind in DB_TARGET_KINDS:
        return _db_target(name, kind, m, p, safe, r)
    if kind == "loadbalancer":
        r.known(m, p, {"kind", "socket", "backend", "frontend", "drill_safe"})
        socket = r.path(m, "socket", p)
        assert socket is not None
        return LoadBalancerTarget(name, socket, r.string(m, "backend", p),
                                  r.name(m, "frontend", p, what="a target name", required=False),
                                  safe)
    if kind == "node":
        r.known(m, p, {"kind", "pidfile", "power_on", "drill_safe"})
        pidfile = r.path(m, "pidfile", p)
        assert pidfile is not None
        return NodeTarget(name, pidfile, r.argv(m, "power_on", p, required=False), safe)
    if kind == "orchestrator":
        r.known(m, p, {"kind", "state_file", "drill_safe"})
        state = r.path(m, "state_file", p)
        assert state is not None
        return OrchestratorTarget(name, state, safe)
    if kind == "rgw-admin":
        r.known(m, p, {"kind", "conf", "binary", "drill_safe"})
        conf = r.path(m, "conf", p)
        assert conf is not None
        return RgwAdminTarget(name, conf, safe, r.string(m, "binary", p, default="radosgw-admin"))
    if kind == "job":
        return _job(name, m, p, safe, r)
    if kind in KUBE_KINDS:
        return parse_kube_target(name, m, p, safe, r.file, r)
    kinds = ", ".join(TARGET_KINDS + DB_TARGET_KINDS + KUBE_KINDS)
    raise r.fail(p + ("kind",), f"unknown target kind {kind!r} (one of: {kinds})")


def _job(name: str, m: dict[Any, Any], p: Path_, safe: bool, r: Reader) -> JobTarget:
    refs = ("admin", "repository", "replica_store")
    r.known(m, p, {"kind", "role", "status_file", "period_s", "start_command", "stop_command",
                   "run_command", "drill_safe", "keep_last", "credentials_file",
                   "service_account", "bucket", "replica_bucket", *refs})
    role = r.string(m, "role", p)
    if role not in ("backup", "replication"):
        raise r.fail(p + ("role",), f"must be backup or replication (got {role!r})")
    keep = r.count(m, "keep_last", p, None, minimum=1, maximum=1_000_000)
    x = {k: r.name(m, k, p, what="a target name", required=False) for k in refs}
    status = r.path(m, "status_file", p)
    assert status is not None
    return JobTarget(name, role, status, r.number(m, "period_s", p),
                     r.argv(m, "start_command", p, required=True),
                     r.argv(m, "stop_command", p, required=True),
                     r.argv(m, "run_command", p, required=True), safe,
                     credentials_file=r.path(m, "credentials_file", p, required=False),
                     service_account=r.string(m, "service_account", p, required=False) or None,
                     admin=x["admin"], repository=x["repository"],
                     bucket=r.bucket(m, "bucket", p, required=False),
                     replica_store=x["replica_store"],
                     replica_bucket=r.bucket(m, "replica_bucket", p, required=False),
                     keep_last=keep)


def _db_target(name: str, kind: str, m: dict[Any, Any], p: Path_, safe: bool,
               r: Reader) -> Target:
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
    return MlflowTarget(name, _url(r, m, "url", p).rstrip("/"), safe)


#: (target kind holding the reference, field) -> the kind of target it must name
_REFERENCES: dict[tuple[type, str], type] = {
    (JobTarget, "admin"): RgwAdminTarget,
    (JobTarget, "repository"): ResticTarget,
    (JobTarget, "replica_store"): S3Target,
    (LoadBalancerTarget, "frontend"): InferenceTarget,
}


def _check_references(out: dict[str, Target], r: Reader) -> None:
    for name, target in out.items():
        for (holder, key), want in _REFERENCES.items():
            if not isinstance(target, holder):
                continue
            ref = getattr(target, key)
            if ref is None:
                continue
            p: Path_ = ("targets", name, key)
            if ref not in out:
                raise r.fail(p, f"names target {ref!r}, which is not under targets")
            if not isinstance(out[ref], want):
                raise r.fail(p, f"target {ref!r} is a {out[ref].kind} target; {key} must name "
                                f"a {kind_name(want)} target")
        if isinstance(target, JobTarget) and target.role == "replication" and (
                (target.replica_store is None) != (target.replica_bucket is None)):
            raise r.fail(("targets", name, "replica_bucket"),
                         "replica_store and replica_bucket go together")
