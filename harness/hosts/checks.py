"""The built-in host checks, each returning what was checked, expected and found.

- :func:`free_space`: a restore or cache path has at least the artifact's size times a factor;
- :func:`tool_version`: a tool the runbook needs exists at the version the inventory pins;
- :func:`credential_file`: exists, readable by its owner only, younger than its rotation age;
- :func:`clock`: the host's clock against the drill host's, within a declared tolerance (RPO is
  computed from wall clocks on different hosts);
- :func:`serving`: the serving process runs, listens on its port, and (after recovery) its
  loaded files hash to the manifest;
- :func:`mount`: a declared mount is mounted (read-write when it must be writable).

A check that cannot run returns ``ok=None`` (never a pass). ``fix`` says what to do when a check
is missed; it is what a preflight refusal tells the operator.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from harness.errors import TargetUnreachable
from harness.hosts.backend import Host
from harness.hosts.spec import CredentialFile, MountSpec, Serving, SpacePath
from harness.integrity import Manifest

Now = Callable[[], datetime]

#: how each pinned tool states its version (anything else: ``<tool> --version``)
VERSION_COMMANDS = {"restic": "version", "haproxy": "-v", "pg_restore": "--version",
                    "radosgw-admin": "--version", "ceph": "--version", "psql": "--version"}
_VERSION = re.compile(r"\d+(?:\.\d+)+")


@dataclass(frozen=True)
class CheckResult:
    check: str
    expected: str
    found: str
    ok: bool | None
    fix: str = ""
    #: the number behind ``found`` where there is one (free bytes)
    measured: int | None = None


def size(n: float) -> str:
    """Bytes for a person: ``1.9 GiB``, ``640 KiB``, ``12 B``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def _unreachable(check: str, expected: str, exc: TargetUnreachable) -> CheckResult:
    return CheckResult(check, expected, f"could not run: {exc}", None,
                       f"make the host reachable: {exc}")


def free_space(host: Host, p: SpacePath, artifact: str, artifact_bytes: int | None
               ) -> CheckResult:
    """Free bytes at ``p.path`` against ``artifact_bytes * p.factor`` (and ``min_free_bytes``)."""
    check = f"free-space {p.path}"
    if artifact_bytes is None and p.min_free_bytes == 0:
        return CheckResult(check, f"{artifact} size x {p.factor:g}", "the artifact's size is "
                           "unknown (no manifest)", None,
                           f"declare min_free_bytes for {p.path} on {host.name}")
    need = max(p.min_free_bytes, math.ceil((artifact_bytes or 0) * p.factor))
    why = (f"the {artifact} is {size(artifact_bytes)}" + (f" x {p.factor:g}" if p.factor != 1
                                                          else "")
           if artifact_bytes is not None else f"min_free_bytes {size(p.min_free_bytes)}")
    expected = f">= {size(need)} free ({why})"
    try:
        # one round trip: df's last line, then (with a budget) du's total
        du = "&& du -sb -- %s" if p.capacity_bytes is not None else ""
        out = host.run(f"df -PB1 -- %s | tail -n 1 {du}", *(
            [p.path, p.path] if du else [p.path]))
        lines = out.stdout.strip().splitlines()
        if out.rc != 0 or not lines:
            return CheckResult(check, expected, f"cannot stat {p.path}: {out.stderr.strip()}",
                               False, f"create {p.path} on {host.name} (or fix the inventory)")
        free = int(lines[0].split()[3])
        budget = ""
        if p.capacity_bytes is not None:
            used = int(lines[1].split()[0])
            budget = f" (holds {size(used)} of its {size(p.capacity_bytes)})"
            free = min(free, p.capacity_bytes - used)
    except TargetUnreachable as exc:
        return _unreachable(check, expected, exc)
    except (ValueError, IndexError):
        return CheckResult(check, expected, "df/du output not understood", None,
                           f"check df and du on {host.name}")
    ok = free >= need
    found = f"{size(max(free, 0))} free{budget}"
    return CheckResult(check, expected, found, ok,
                       "" if ok else f"{host.name}: {p.path} has {size(max(free, 0))} free, "
                                     f"{why}: free or expand it to {size(need)}", max(free, 0))


def _version_matches(pin: str, found: str) -> bool:
    want = pin.split(".")
    return found.split(".")[:len(want)] == want


def tool_version(host: Host, tool: str, pin: str) -> CheckResult:
    check, expected = f"tool {tool}", f"version {pin}"
    args = VERSION_COMMANDS.get(tool.rsplit("/", 1)[-1], "--version")
    try:
        # one round trip: exit status 127 says the tool is not there
        out = host.run(f"command -v %s >/dev/null || exit 127; %s {args}", tool, tool)
    except TargetUnreachable as exc:
        return _unreachable(check, expected, exc)
    if out.rc == 127:
        return CheckResult(check, expected, "not installed", False,
                           f"{host.name}: install {tool} {pin} (the runbook needs it)")
    m = _VERSION.search(out.stdout + "\n" + out.stderr)
    if out.rc != 0 or m is None:
        return CheckResult(check, expected, f"`{tool} {args}` gave no version", None,
                           f"{host.name}: check that {tool} runs")
    ok = _version_matches(pin, m.group())
    return CheckResult(check, expected, f"version {m.group()}", ok,
                       "" if ok else f"{host.name}: {tool} is {m.group()}, the inventory pins "
                                     f"{pin}: install {pin} or update the pin")


def credential_file(host: Host, c: CredentialFile, now: Now) -> CheckResult:
    """Mode, owner and age only: the file's contents are never read."""
    check = f"credential-file {c.path}"
    days = c.max_age_s / 86400
    expected = f"exists, mode 0600 or stricter, younger than {days:g} days"
    try:
        out = host.run("stat -Lc '%%a %%U %%Y' -- %s", c.path)
    except TargetUnreachable as exc:
        return _unreachable(check, expected, exc)
    if out.rc != 0:
        return CheckResult(check, expected, "missing", False,
                           f"{host.name}: credential file {c.path} is missing")
    try:
        octal, owner, epoch = out.stdout.split()
        mode, mtime = int(octal, 8), datetime.fromtimestamp(int(epoch), UTC)
    except ValueError:
        return CheckResult(check, expected, "stat output not understood", None,
                           f"{host.name}: check stat on {c.path}")
    age_s = (now() - mtime).total_seconds()
    found = f"mode {mode:04o}, owner {owner}, {age_s / 86400:.2f} days old"
    if mode & 0o077:
        return CheckResult(check, expected, found, False,
                           f"{host.name}: credential file {c.path} is mode {mode:04o} (readable "
                           f"or writable by others than {owner}): chmod 600 {c.path}")
    if age_s > c.max_age_s:
        return CheckResult(check, expected, found, False,
                           f"{host.name}: credential file {c.path} is {age_s / 86400:.1f} days "
                           f"old, past its rotation age of {days:g} days: rotate it")
    return CheckResult(check, expected, found, True)


def clock(host: Host, tolerance_s: float, now: Now, declared_in: str = "",
          attempts: int = 3) -> CheckResult:
    """The host's clock against the drill host's. The remote clock is read somewhere within the
    round trip, so only an interval of offsets is known: the check fails when even its nearest
    end is beyond the tolerance, passes when its farthest end is within it, and cannot tell
    otherwise. A slow round trip is retried (up to ``attempts``), keeping the narrowest."""
    check, expected = "clock", f"within {tolerance_s:g} s of the drill host"
    best: tuple[float, float] | None = None
    for _ in range(attempts):
        try:
            before = now()
            out = host.run("date -u +%s.%N")  # no args: testinfra leaves % as is
            after = now()
        except TargetUnreachable as exc:
            return _unreachable(check, expected, exc)
        try:
            remote = float(out.stdout.strip())
        except ValueError:
            return CheckResult(check, expected, "`date +%s.%N` not understood", None,
                               f"{host.name}: check that GNU date runs")
        interval = (remote - after.timestamp(), remote - before.timestamp())
        if best is None or interval[1] - interval[0] < best[1] - best[0]:
            best = interval
        if max(abs(best[0]), abs(best[1])) <= tolerance_s:
            break
    assert best is not None
    low, high = best
    least = 0.0 if low <= 0 <= high else min(abs(low), abs(high))
    most = max(abs(low), abs(high))
    where = f" (declared in {declared_in})" if declared_in else ""
    found = f"offset between {low:+.3f} s and {high:+.3f} s"
    if least > tolerance_s:
        return CheckResult(check, expected, found, False,
                           f"{host.name}: clock is at least {least:.3f} s off the drill host, "
                           f"beyond the tolerance of {tolerance_s:g} s{where}: synchronise it "
                           f"(chrony/timesyncd); RPO uses both clocks")
    if most > tolerance_s:
        return CheckResult(check, expected, found, None,
                           f"{host.name}: the round trip ({high - low:.3f} s) is too slow to "
                           f"prove the clock within {tolerance_s:g} s{where}")
    return CheckResult(check, expected, found, True)


def serving(host: Host, s: Serving, manifest: Manifest | None) -> list[CheckResult]:
    out: list[CheckResult] = []
    try:
        # the shell running pgrep has the pattern in its own command line: leave it out
        proc = host.run('pgrep -f -- %s | grep -qvx "$$"', s.process)
        out.append(CheckResult(f"process {s.process}", "running",
                               "running" if proc.rc == 0 else "not running", proc.rc == 0,
                               f"{host.name}: start the serving process ({s.process})"))
        listening = _listening(host, s.port)
        out.append(CheckResult(f"listening tcp/{s.port}", "listening",
                               "listening" if listening else "not listening", listening,
                               f"{host.name}: nothing listens on tcp/{s.port}"))
        if manifest is not None and s.loaded_dir is not None:
            out.append(_loaded_files(host, s.loaded_dir, manifest))
    except TargetUnreachable as exc:
        out.append(_unreachable(f"process {s.process}", "running", exc))
    return out


def _listening(host: Host, port: int) -> bool:
    # any local address: testinfra's tcp://PORT means the wildcard address only
    out = host.run("ss -Hltn")
    if out.rc != 0:
        raise TargetUnreachable(f"{host.name}: `ss -ltn` failed: {out.stderr.strip()}")
    return any(len(cols) > 3 and cols[3].rsplit(":", 1)[-1] == str(port)
               for cols in (line.split() for line in out.stdout.splitlines()))


def _loaded_files(host: Host, directory: str, manifest: Manifest) -> CheckResult:
    check = f"loaded-files {directory}"
    expected = f"{len(manifest.files)} files hash to the manifest"
    res = host.run("find -L %s -type f -exec sha256sum {} +", directory)
    found: dict[str, set[str]] = {}
    for line in res.stdout.splitlines():
        digest, _, path = line.partition("  ")
        found.setdefault(digest, set()).add(path)
    good = sum(1 for f in manifest.files
               if any(p.endswith("/" + f.path) for p in found.get(f.sha256, ())))
    ok = good == len(manifest.files)
    return CheckResult(check, expected, f"{good} of {len(manifest.files)} match", ok,
                       f"{host.name}: the files under {directory} do not match the manifest: "
                       f"reload the model")


def mount(host: Host, m: MountSpec) -> CheckResult:
    check = f"mount {m.path}"
    expected = "mounted read-write" if m.writable else "mounted"
    try:
        mp = host.ti.mount_point(m.path)
        if not host.call(lambda: mp.exists):
            return CheckResult(check, expected, "not mounted", False,
                               f"{host.name}: mount {m.path}")
        options = list(host.call(lambda: mp.options))
    except TargetUnreachable as exc:
        return _unreachable(check, expected, exc)
    rw = "rw" in options
    ok = rw or not m.writable
    return CheckResult(check, expected, f"mounted {'rw' if rw else 'ro'}", ok,
                       "" if ok else f"{host.name}: {m.path} is mounted read-only: remount it rw")
