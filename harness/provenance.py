"""The auditor's part of the evidence: who, why, which plan, what scope, which tools, which machine.

:func:`audit_record` builds :class:`~harness.model.AuditRecord` at the end of a drill from the
request, the inventory and the journal. The rule is the project's: every value is measured (git
commit, definition hash, ``--version`` output, the host), read from the inventory or the command
line, or left as None; a missing participant list is recorded as missing, not guessed.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import inspect
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from datetime import datetime
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from harness.inventory import (
    Asset,
    ExerciseSpec,
    InferenceTarget,
    Inventory,
    ResticTarget,
    S3Target,
)
from harness.model import (
    AuditRecord,
    BaselineFact,
    Event,
    Exercise,
    Finding,
    Participant,
    Phase,
    RunbookVersion,
    Scope,
    ScopeAsset,
    ScopeSystem,
    StepRecord,
)

#: The exercise type when nobody says otherwise: what drillbook does is a fact, not a guess.
DEFAULT_EXERCISE_TYPE = "live technical recovery test (fault injected, automated runbook)"

#: Tools whose version an auditor asks for, and the command that prints it. Only tools installed
#: here are asked; the rest are recorded as "not installed".
VERSION_COMMANDS: dict[str, tuple[str, ...]] = {
    "restic": ("restic", "version"),
    "ceph": ("ceph", "--version"),
    "radosgw": ("radosgw", "--version"),
    "haproxy": ("haproxy", "-v"),
    "postgresql": ("postgres", "--version"),
    "mlflow": ("mlflow", "--version"),
}


#: What the command line (or a pytest item) says about the exercise; None means not given there.
#: The same shape as the inventory's ``exercise:`` section, which fills what the CLI leaves out.
ExerciseInput = ExerciseSpec


def parse_participant(text: str) -> tuple[str, str]:
    """``NAME:ROLE`` -> (name, role); the role is required (an auditor asks who did what)."""
    name, sep, role = text.partition(":")
    if not sep or not name.strip() or not role.strip():
        raise ValueError(f"participant {text!r} must be NAME:ROLE, e.g. 'Ana Ruiz:incident lead'")
    return name.strip(), role.strip()


def exercise_record(given: ExerciseInput, inventory: Inventory, default_title: str,
                    started: datetime) -> Exercise:
    spec = inventory.exercise
    sources: dict[str, str] = {}

    def pick(field: str, cli: str | None, inv: str | None) -> str | None:
        if cli is not None:
            sources[field] = "cli"
            return cli
        if inv is not None:
            sources[field] = "inventory"
            return inv
        return None

    participants = given.participants or spec.participants
    if participants:
        sources["participants"] = "cli" if given.participants else "inventory"
    title = pick("title", given.title, spec.title)
    kind = pick("type", given.type, spec.type)
    return Exercise(
        title=title or default_title,
        type=kind or DEFAULT_EXERCISE_TYPE,
        reason=pick("reason", given.reason, spec.reason),
        planned_date=pick("planned_date", given.planned_date, spec.planned_date),
        actual_date=started.date().isoformat(),
        participants=tuple(Participant(n, r) for n, r in participants),
        approver=pick("approver", given.approver, spec.approver),
        sources=sources,
    )


# --- the runbook's version ------------------------------------------------------------------------

@functools.cache
def git_state(directory: Path) -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout holding ``directory``; (None, None) when it is not one
    (an installed wheel) or git is missing. Asked once per directory and process: the code a
    process runs was read when it was imported, so a later edit of the checkout does not change
    what its drills ran (and two git commands per drill cost more than a scripted drill)."""
    git = shutil.which("git")
    if git is None:
        return None, None
    try:
        head = subprocess.run([git, "-C", str(directory), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10, check=False)
        if head.returncode != 0:
            return None, None
        status = subprocess.run([git, "-C", str(directory), "status", "--porcelain",
                                 "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    dirty = None if status.returncode != 0 else bool(status.stdout.strip())
    return head.stdout.strip(), dirty


def runbook_version(scenario_cls: type, steps: list[tuple[str, str]]) -> RunbookVersion:
    """Hash of the scenario's definition: its name, its steps (name, summary) in order and the
    source of the module that defines it. Changing a step or its code changes the hash."""
    module = sys.modules.get(scenario_cls.__module__)
    try:
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):
        source = ""
    definition = json.dumps({"scenario": getattr(scenario_cls, "name", scenario_cls.__name__),
                             "steps": steps, "module_source": source}, sort_keys=True)
    origin = Path(inspect.getfile(scenario_cls)) if module is not None else Path.cwd()
    commit, dirty = git_state(origin.parent)
    return RunbookVersion(commit, dirty, hashlib.sha256(definition.encode()).hexdigest(),
                          tuple(name for name, _ in steps), scenario_cls.__module__)


# --- scope ------------------------------------------------------------------------------------------

_USERINFO = re.compile(r"//[^/@\s]*@")


def redact_location(text: str) -> str:
    """An endpoint or repository without any ``user:password@`` part (restic's rest: and s3:
    repository strings may carry one)."""
    try:
        parts = urlsplit(text)
    except ValueError:
        return _USERINFO.sub("//", text)
    if parts.username is not None or parts.password is not None:
        host = parts.hostname or ""
        if parts.port is not None:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return _USERINFO.sub("//", text)


def scope(inventory: Inventory, asset: Asset, events: list[Event] | tuple[Event, ...],
          blast_radius: str) -> Scope:
    systems: list[ScopeSystem] = []
    roles = [(asset.store, "artifact store"), (asset.backup, "backup"),
             (asset.served_by, "serving endpoint")]
    for name, role in roles:
        if name is None:
            continue
        t = inventory.targets[name]
        if isinstance(t, S3Target):
            location = t.endpoint
        elif isinstance(t, ResticTarget):
            location = t.repository
        elif isinstance(t, InferenceTarget):
            location = t.url
        else:  # a target kind added later: name it without guessing where it lives
            location = ""
        systems.append(ScopeSystem(name, t.kind, role, redact_location(location), t.drill_safe))
    version = next((e for e in events if e.name == "asset.version"), None)
    model = None
    if version is not None and version.detail.get("model"):
        model = str(version.detail["model"])
    elif asset.served_by is not None and isinstance(inventory.targets[asset.served_by],
                                                    InferenceTarget):
        model = inventory.inference(asset.served_by).model
    backups: list[str] = []
    if asset.backup is not None:
        target = inventory.targets[asset.backup]
        if isinstance(target, ResticTarget):
            repo = redact_location(target.repository)
            backups.append(f"{repo} (path {asset.backup_path})")
        elif isinstance(target, S3Target):  # e.g. database dumps kept in a bucket
            backups.append(f"{redact_location(target.endpoint)} (path {asset.backup_path})")
        else:
            backups.append(f"target {asset.backup} ({target.kind})")
    scoped = ScopeAsset(
        id=asset.id, tier=asset.tier, kind=asset.kind, model=model,
        version=None if version is None else str(version.detail.get("version")),
        artifact_uris=(f"s3://{asset.bucket}/{asset.prefix}",
                       f"s3://{asset.bucket}/{asset.manifest_key}"),
        backup_locations=tuple(backups))
    declared = next((e for e in events if e.name == "blast-radius.declared"), None)
    if declared is not None:
        # the declaration the runner enforced (fence, drill-safe check, lease) comes first; the
        # scenario's prose, if any, explains it
        text = f"declared: {declared.detail.get('resources')}"
        blast_radius = f"{text} ({blast_radius})" if blast_radius else text
    return Scope(inventory.site, tuple(systems), (scoped,), blast_radius)


# --- baseline, deviations, findings ---------------------------------------------------------------

def baseline_facts(events: list[Event] | tuple[Event, ...]) -> tuple[BaselineFact, ...]:
    """Events recorded before the fault, without the runner's own bookkeeping."""
    out = []
    for e in events:
        if e.phase not in (Phase.PREFLIGHT, Phase.BASELINE):
            continue
        if e.name.startswith(("phase.", "step.", "blast-radius.")):  # the scope shows it
            continue
        out.append(BaselineFact(e.name, e.utc, dict(e.detail)))
    return tuple(out)


def deviations(events: list[Event] | tuple[Event, ...], steps: list[StepRecord] |
               tuple[StepRecord, ...], overrides: list[str], dry_run: bool) -> tuple[str, ...]:
    """Where the drill did not go as the runbook says: replaced steps, steps that did not
    succeed, checks skipped for lack of something to check."""
    out: list[str] = []
    if dry_run:
        out.append("dry run: no fault was injected and nothing was recovered")
    out += [f"runbook step {name!r} was replaced for this drill (override)" for name in overrides]
    for s in steps:
        if s.outcome.value != "ok":
            tail = f": {s.message}" if s.message else ""
            out.append(f"{s.phase.value} step {s.name!r} {s.outcome.value}{tail}")
    for e in events:
        if e.name.endswith(".skipped"):
            reason = e.detail.get("reason")
            out.append(f"{e.name}" + (f": {reason}" if reason else ""))
    return tuple(out)


def drill_findings(failures: list[str], inconclusive: list[str]) -> tuple[Finding, ...]:
    """One finding per reason the drill gave; corrective actions come later from the team."""
    out = [Finding(f"F{i}", "fail", text, "drill") for i, text in enumerate(failures, 1)]
    n = len(out)
    out += [Finding(f"F{n + i}", "inconclusive", text, "drill")
            for i, text in enumerate(inconclusive, 1)]
    return tuple(out)


# --- tools and environment ------------------------------------------------------------------------

@functools.cache
def tool_versions() -> dict[str, str]:
    """First line of each installed tool's version output, asked once per process (never typed
    in; cached because a pytest session runs many drills with the same binaries). The tools are
    asked in parallel: a Python CLI such as mlflow takes seconds just to start."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(VERSION_COMMANDS)) as pool:
        found = dict(zip(VERSION_COMMANDS, pool.map(_tool_version, VERSION_COMMANDS.values()),
                         strict=True))
    return found


def _tool_version(argv: tuple[str, ...]) -> str:
    exe = shutil.which(argv[0]) or (f"/usr/sbin/{argv[0]}"
                                    if os.access(f"/usr/sbin/{argv[0]}", os.X_OK) else None)
    if exe is None:
        return "not installed"
    if Path(exe).parent == Path(sys.executable).parent:
        # a console script of this very environment (mlflow): its package metadata names the
        # version it would print, without the half minute its imports take on a busy host
        try:
            return f"{argv[0]}, version {version(argv[0])} (package metadata)"
        except PackageNotFoundError:
            pass
    try:
        proc = subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=30,
                              check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"version unknown ({type(exc).__name__})"
    text = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    return text[0].strip() if text and proc.returncode == 0 else \
        f"version unknown (exit {proc.returncode})"


@functools.cache
def _packages() -> tuple[str, ...]:
    """The installed Python distributions, read once per process (the walk reads hundreds of
    metadata files)."""
    return tuple(sorted(f"{d.metadata['Name']}=={d.version}" for d in distributions()
                        if d.metadata["Name"]))


def environment_fingerprint(inventory_path: Path) -> dict[str, str]:
    """Which machine ran the drill, with what: enough to tell two environments apart."""
    dists = _packages()
    env = {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu_count": str(os.cpu_count() or "unknown"),
        "python_packages_sha256": hashlib.sha256("\n".join(dists).encode()).hexdigest(),
        "python_packages": str(len(dists)),
    }
    try:
        env["inventory_sha256"] = hashlib.sha256(inventory_path.read_bytes()).hexdigest()
    except OSError:
        env["inventory_sha256"] = "unreadable"
    machine_id = Path("/etc/machine-id")
    if machine_id.is_file():
        # hashed: the raw id is a stable identifier some sites treat as sensitive
        env["machine_id_sha256"] = hashlib.sha256(machine_id.read_bytes().strip()).hexdigest()
    return env


def audit_record(*, inventory: Inventory, asset: Asset, scenario_cls: type,
                 steps: list[tuple[str, str]], events: list[Event] | tuple[Event, ...],
                 journal_steps: list[StepRecord] | tuple[StepRecord, ...], given: ExerciseInput,
                 started: datetime, default_title: str, overrides: list[str], dry_run: bool,
                 failures: list[str], inconclusive: list[str]) -> AuditRecord:
    return AuditRecord(
        exercise=exercise_record(given, inventory, default_title, started),
        runbook=runbook_version(scenario_cls, steps),
        scope=scope(inventory, asset, events, getattr(scenario_cls, "blast_radius", "")),
        objectives_source=inventory.objectives_for(asset).source,
        baseline=baseline_facts(events),
        deviations=deviations(events, journal_steps, overrides, dry_run),
        findings=drill_findings(failures, inconclusive),
        tool_versions=dict(tool_versions()),
        environment=environment_fingerprint(inventory.path),
    )
