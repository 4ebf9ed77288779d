"""A site's own host checks, in the vocabulary testinfra users know.

    - file: /etc/backup/env          exists, mode ("0600"), user, group, contains, is_directory
    - package: restic                installed, version (a prefix: "0.16")
    - service: chrony                running, enabled
    - socket: tcp://127.0.0.1:5432   listening
    - command: restic version        exit_status (default 0), stdout_contains

A command's output is never copied into evidence (it might print a secret): only its exit
status and whether the expected text was found.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.errors import TargetUnreachable
from harness.hosts.backend import Host
from harness.hosts.checks import CheckResult
from harness.hosts.spec import SiteCheck

Value = str | int | bool


def run_site_check(host: Host, c: SiteCheck) -> CheckResult:
    check = f"{c.kind} {c.subject}"
    expected = ", ".join(f"{k} {_show(v)}" for k, v in c.expect)
    try:
        found = _CHECKERS[c.kind](host, c)
    except TargetUnreachable as exc:
        return CheckResult(check, expected, f"could not run: {exc}", None,
                           f"make the host reachable: {exc}")
    missed = [k for k, v in c.expect if found.get(k) != v]
    shown = ", ".join(f"{k} {_show(found.get(k))}" for k, _ in c.expect)
    return CheckResult(check, expected, shown, not missed,
                       "" if not missed else f"{host.name}: {check}: expected {expected}, "
                                             f"found {shown}")


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    return "unknown" if v is None else str(v)


def _file(host: Host, c: SiteCheck) -> dict[str, Value]:
    f = host.ti.file(c.subject)
    want = dict(c.expect)
    out: dict[str, Value] = {"exists": bool(host.call(lambda: f.exists))}
    if not out["exists"]:
        return out
    if "mode" in want:
        out["mode"] = f"{int(host.call(lambda: f.mode)):04o}"
    if "user" in want:
        out["user"] = str(host.call(lambda: f.user))
    if "group" in want:
        out["group"] = str(host.call(lambda: f.group))
    if "is_directory" in want:
        out["is_directory"] = bool(host.call(lambda: f.is_directory))
    if "contains" in want:
        out["contains"] = want["contains"] if host.call(
            lambda: f.contains(str(want["contains"]))) else "(not found)"
    return out


def _package(host: Host, c: SiteCheck) -> dict[str, Value]:
    p = host.ti.package(c.subject)
    installed = bool(host.call(lambda: p.is_installed))
    out: dict[str, Value] = {"installed": installed}
    want = dict(c.expect)
    if installed and "version" in want:
        version = str(host.call(lambda: p.version))
        pin = str(want["version"])
        out["version"] = pin if version.startswith(pin) else version
    return out


def _service(host: Host, c: SiteCheck) -> dict[str, Value]:
    s = host.ti.service(c.subject)
    out: dict[str, Value] = {}
    want = dict(c.expect)
    if "running" in want:
        out["running"] = bool(host.call(lambda: s.is_running))
    if "enabled" in want:
        out["enabled"] = bool(host.call(lambda: s.is_enabled))
    return out


def _socket(host: Host, c: SiteCheck) -> dict[str, Value]:
    s = host.ti.socket(c.subject)
    return {"listening": bool(host.call(lambda: s.is_listening))}


def _command(host: Host, c: SiteCheck) -> dict[str, Value]:
    res = host.run(c.subject)
    want = dict(c.expect)
    out: dict[str, Value] = {"exit_status": res.rc}
    if "stdout_contains" in want:
        text = str(want["stdout_contains"])
        out["stdout_contains"] = text if text in res.stdout else "(not found)"
    return out


_CHECKERS: dict[str, Callable[[Host, SiteCheck], dict[str, Value]]] = {
    "file": _file, "package": _package, "service": _service, "socket": _socket,
    "command": _command,
}

#: what each kind may expect, and the type of each expectation
EXPECTATIONS: dict[str, dict[str, type]] = {
    "file": {"exists": bool, "mode": str, "user": str, "group": str, "contains": str,
             "is_directory": bool},
    "package": {"installed": bool, "version": str},
    "service": {"running": bool, "enabled": bool},
    "socket": {"listening": bool},
    "command": {"exit_status": int, "stdout_contains": str},
}
