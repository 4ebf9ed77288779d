"""The inventory's ``hosts:`` section: the machines behind the targets, and what to check on them.

    hosts:
      gpu-node-2:
        backend: ssh                      # local | ssh (kubectl for pods: not yet)
        ssh: {address: 10.0.4.12, user: drill, key_file: keys/drill_ed25519, port: 22,
              known_hosts: keys/known_hosts}   # a key file, never a password
        targets: [inference]              # the targets and assets that live on it
        assets: [llama-8b-weights]
        paths:                            # free space >= the artifact's size x factor
          - {path: /var/cache/models, factor: 2, capacity_bytes: 21474836480}
        tools: {restic: "0.16", pg_restore: "15"}
        credentials: [{path: /etc/backup/s3.env, max_age_days: 90}]
        clock: {tolerance_s: 2}
        mounts: [{path: /var/cache/models, writable: true}]
        serving: [{process: "tritonserver", port: 8000, loaded_dir: /var/cache/models}]
        checks:                           # the site's own, in testinfra's vocabulary
          - {file: /etc/backup/s3.env, mode: "0600", user: backup}
          - {command: "restic version", stdout_contains: "restic 0.16"}

Relative paths (key files, known_hosts) are resolved against the inventory's directory; paths
on the host are used as given. Every mistake is an InventoryError with file, line and field.
"""

from __future__ import annotations

import re
from typing import Any

from harness.hosts.site import EXPECTATIONS
from harness.hosts.spec import (
    BACKENDS,
    SITE_CHECK_KINDS,
    CredentialFile,
    HostSpec,
    MountSpec,
    Serving,
    SiteCheck,
    SpacePath,
    SshAccess,
)
from harness.inventory.fields import Reader
from harness.inventory.source import Path_

HOST_FIELDS = {"backend", "ssh", "targets", "assets", "paths", "tools", "credentials", "clock",
               "mounts", "serving", "checks"}
_SECRETS = {"password", "password_env", "passphrase", "key", "private_key"}
_TOOL = re.compile(r"[A-Za-z0-9_./+-]{1,128}")


def hosts(top: dict[Any, Any], targets: set[str], assets: set[str], r: Reader
          ) -> dict[str, HostSpec]:
    section = r.section(top, "hosts")
    out: dict[str, HostSpec] = {}
    for name, spec in section.items():
        p: Path_ = ("hosts", str(name))
        r.check_name(name, p, "a host name")
        out[str(name)] = _host(str(name), r.mapping(spec, p), p, targets, assets, r)
    return out


def _host(name: str, m: dict[Any, Any], p: Path_, targets: set[str], assets: set[str],
          r: Reader) -> HostSpec:
    r.known(m, p, HOST_FIELDS)
    backend = r.string(m, "backend", p)
    if backend not in BACKENDS:
        hint = " (kubectl for pods is not built yet)" if backend == "kubectl" else ""
        raise r.fail(p + ("backend",), f"must be one of {', '.join(BACKENDS)}{hint}")
    ssh = _ssh(m, p, r) if backend == "ssh" else None
    if backend != "ssh" and "ssh" in m:
        raise r.fail(p + ("ssh",), "only an ssh host has ssh settings")
    linked_targets = _names(m, "targets", p, r)
    for i, t in enumerate(linked_targets):
        if t not in targets:
            raise r.fail(p + ("targets", i), f"names target {t!r}, which is not under targets")
    linked_assets = _names(m, "assets", p, r)
    for i, a in enumerate(linked_assets):
        if a not in assets:
            raise r.fail(p + ("assets", i), f"names asset {a!r}, which is not under assets")
    clock = r.mapping(m["clock"], p + ("clock",)) if m.get("clock") is not None else {}
    r.known(clock, p + ("clock",), {"tolerance_s"})
    return HostSpec(
        name=name, backend=backend, ssh=ssh, targets=linked_targets, assets=linked_assets,
        paths=tuple(_path(e, q, r) for e, q in _items(m, "paths", p, r)),
        tools=_tools(m, p, r),
        credentials=tuple(_credential(e, q, r) for e, q in _items(m, "credentials", p, r)),
        clock_tolerance_s=(r.number(clock, "tolerance_s", p + ("clock",)) if clock else None),
        mounts=tuple(_mount(e, q, r) for e, q in _items(m, "mounts", p, r)),
        serving=tuple(_serving(e, q, r) for e, q in _items(m, "serving", p, r)),
        checks=tuple(_site_check(e, q, r) for e, q in _items(m, "checks", p, r)),
        declared_in=f"{r.file}, hosts.{name}",
    )


def _ssh(m: dict[Any, Any], p: Path_, r: Reader) -> SshAccess:
    q = p + ("ssh",)
    s = r.mapping(r.req(m, "ssh", p), q)
    for key in s:
        if key in _SECRETS:
            raise r.fail(q + (str(key),), "no password or key material in the inventory: give "
                                          "key_file, the path of a private key file")
    r.known(s, q, {"address", "user", "key_file", "port", "known_hosts"})
    port = r.count(s, "port", q, 22, minimum=1, maximum=65535)
    assert port is not None
    known = r.string(s, "known_hosts", q, required=False)
    return SshAccess(
        address=_address(r.string(s, "address", q), q + ("address",), r),
        user=str(r.name(s, "user", q, what="a user name")),
        key_file=r.beside(r.file, r.string(s, "key_file", q), q + ("key_file",)),
        port=port,
        known_hosts=r.beside(r.file, known, q + ("known_hosts",)) if known else None)


def _address(v: str, q: Path_, r: Reader) -> str:
    if re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", v) is None or v.startswith("-"):
        raise r.fail(q, f"is not a host name or IP address (got {v!r})")
    return v


def _names(m: dict[Any, Any], key: str, p: Path_, r: Reader) -> tuple[str, ...]:
    v = m.get(key, [])
    if not isinstance(v, list):
        raise r.fail(p + (key,), "must be a list of names")
    for i, item in enumerate(v):
        r.check_name(item, p + (key, i), "a name")
    return tuple(v)


def _items(m: dict[Any, Any], key: str, p: Path_, r: Reader
           ) -> list[tuple[dict[Any, Any], Path_]]:
    v = m.get(key, [])
    if not isinstance(v, list):
        raise r.fail(p + (key,), "must be a list")
    return [(r.mapping(e, p + (key, i)), p + (key, i)) for i, e in enumerate(v)]


def _host_path(m: dict[Any, Any], key: str, q: Path_, r: Reader) -> str:
    v = r.string(m, key, q)
    if not v.startswith("/"):
        raise r.fail(q + (key,), f"must be an absolute path on the host (got {v!r})")
    return v


def _path(e: dict[Any, Any], q: Path_, r: Reader) -> SpacePath:
    r.known(e, q, {"path", "factor", "min_free_bytes", "capacity_bytes"})
    big = 1 << 60
    return SpacePath(
        path=_host_path(e, "path", q, r),
        factor=r.positive(e, "factor", q, 1.0),
        min_free_bytes=r.count(e, "min_free_bytes", q, 0, minimum=0, maximum=big) or 0,
        capacity_bytes=r.count(e, "capacity_bytes", q, None, minimum=1, maximum=big))


def _tools(m: dict[Any, Any], p: Path_, r: Reader) -> tuple[tuple[str, str], ...]:
    q = p + ("tools",)
    tools = r.mapping(m.get("tools", {}), q)
    out = []
    for tool, pin in tools.items():
        if not isinstance(tool, str) or _TOOL.fullmatch(tool) is None:
            raise r.fail(q + (str(tool),), "is not a tool name")
        if isinstance(pin, bool) or not isinstance(pin, (str, int, float)):
            raise r.fail(q + (tool,), "must be a version (quote it: \"0.16\")")
        text = str(pin)
        if re.fullmatch(r"\d+(\.\d+)*", text) is None:
            raise r.fail(q + (tool,), f"must be a version such as \"0.16\" (got {text!r})")
        out.append((tool, text))
    return tuple(out)


def _credential(e: dict[Any, Any], q: Path_, r: Reader) -> CredentialFile:
    r.known(e, q, {"path", "max_age_days", "max_age_s"})
    if ("max_age_days" in e) == ("max_age_s" in e):
        raise r.fail(q + ("max_age_days",), "give the rotation age: max_age_days or max_age_s")
    age = (r.number(e, "max_age_days", q) * 86400 if "max_age_days" in e
           else r.number(e, "max_age_s", q))
    return CredentialFile(_host_path(e, "path", q, r), age)


def _mount(e: dict[Any, Any], q: Path_, r: Reader) -> MountSpec:
    r.known(e, q, {"path", "writable"})
    return MountSpec(_host_path(e, "path", q, r), r.boolean(e, "writable", q, True))


def _serving(e: dict[Any, Any], q: Path_, r: Reader) -> Serving:
    r.known(e, q, {"process", "port", "loaded_dir"})
    port = r.count(e, "port", q, None, minimum=1, maximum=65535)
    if port is None:
        raise r.fail(q + ("port",), "is required")
    loaded = _host_path(e, "loaded_dir", q, r) if "loaded_dir" in e else None
    return Serving(r.string(e, "process", q), port, loaded)


def _site_check(e: dict[Any, Any], q: Path_, r: Reader) -> SiteCheck:
    kinds = [k for k in SITE_CHECK_KINDS if k in e]
    if len(kinds) != 1:
        raise r.fail(q, f"must name exactly one of {', '.join(SITE_CHECK_KINDS)}")
    kind = kinds[0]
    allowed = EXPECTATIONS[kind]
    r.known(e, q, {kind, *allowed})
    expect: list[tuple[str, str | int | bool]] = []
    for key, typ in allowed.items():
        if key not in e:
            continue
        v = e[key]
        if typ is bool and not isinstance(v, bool):
            raise r.fail(q + (key,), f"must be true or false (got {v!r})")
        if typ is int and (isinstance(v, bool) or not isinstance(v, int)):
            raise r.fail(q + (key,), f"must be a whole number (got {v!r})")
        if typ is str:
            v = r.text(v, q + (key,))
            if key == "mode" and re.fullmatch(r"0?[0-7]{3}", v) is None:
                raise r.fail(q + (key,), f"must be an octal mode such as \"0600\" (got {v!r})")
            if key == "mode":
                v = v.zfill(4)
        expect.append((key, v))
    if kind == "command" and "exit_status" not in e:
        expect.insert(0, ("exit_status", 0))
    if kind == "file" and "exists" not in e:
        expect.insert(0, ("exists", True))
    return SiteCheck(kind, r.text(e[kind], q + (kind,)), tuple(expect))
