"""The signal safety matrix: does a signal at any point of a drill leave the target as found?

For each scenario it first runs one drill undisturbed and reads its journal to learn the drill's
phase and step boundaries (every ``phase.*`` and ``step.*`` event, and ``fault.injected``). Then,
for SIGINT and SIGTERM and for every boundary, it runs ``drillbook run`` as a subprocess, watches
the drill's journal.jsonl for that event, sends the signal the moment it appears (or a little
later, to land inside revert), and when drillbook has exited checks:

- **target as found**: for S3 assets every key's version list (ETag, size, delete markers, in
  order) equals the list read before the drill; for a database every table's row count and
  content checksum equals the one read before;
- **sealed evidence**: evidence.json is there, SHA256SUMS matches every file of the folder, and
  the drill has its row in the history;
- the exit code is 130 (interrupted).

It prints one line per try and the counts (tries, target as found, sealed evidence, exit 130)
per scenario and signal. tests/test_signals_lab.py runs a representative subset with the same
code.

    .venv/bin/python bench/safety_matrix.py [--lab-dir DIR] [--scenario NAME ...]
                                            [--signal SIGINT|SIGTERM ...] [--limit N]

Without ``--lab-dir`` it brings up a lab in a temporary directory and destroys it afterwards;
with one that already holds a lab, it reuses it and leaves it running.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import history, signing
from harness.inventory import Asset, load_inventory
from harness.targets.s3 import S3Store
from lab.postgres import PostgresServer
from lab.stack import Lab


@dataclass(frozen=True)
class Case:
    """One drill of the matrix."""

    scenario: str
    variant: str
    asset: str

    @property
    def label(self) -> str:
        return f"{self.scenario}/{self.variant}"


CASES = (
    Case("artifact-deletion", "soft", "lab-mlp-weights"),
    Case("artifact-deletion", "purge", "lab-mlp-weights"),
    Case("adapter-loss", "purge", "lab-lora-adapter"),
    Case("adapter-loss", "soft", "lab-lora-adapter"),
    Case("annotation-db-loss", "drop", "annotations-db"),
)


@dataclass(frozen=True)
class Trigger:
    """Send the signal when the ``occurrence``-th event named ``event`` is journaled, after
    ``delay_s`` (a delay after ``step.revert.started`` lands the signal inside revert)."""

    event: str
    occurrence: int = 1
    delay_s: float = 0.0

    @property
    def label(self) -> str:
        n = f"#{self.occurrence}" if self.occurrence > 1 else ""
        return f"{self.event}{n}" + (f"+{self.delay_s:g}s" if self.delay_s else "")


@dataclass
class Try:
    case: Case
    signum: int
    trigger: Trigger
    sent: bool = False
    exit_code: int | None = None
    as_found: bool = False
    sealed: bool = False
    landed: str = ""  # where the evidence says the signal came (phase/step)
    detail: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.sent and self.as_found and self.sealed and self.exit_code == 130

    def line(self) -> str:
        name = signal.Signals(self.signum).name
        verdict = "ok" if self.ok else ("not sent" if not self.sent else "BAD")
        return (f"{self.case.label:30} {name:7} at {self.trigger.label:38} exit {self.exit_code} "
                f"as-found {self.as_found!s:5} sealed {self.sealed!s:5} landed {self.landed:24} "
                f"{verdict} {'; '.join(self.detail)}")


# -- the target's state ------------------------------------------------------------------------

def target_state(lab: Lab, asset: Asset) -> Any:
    """What "as found" means for the asset: S3 version lists, or table checksums."""
    if asset.database:
        try:
            tables = PostgresServer(lab.root).db().table_states(asset.database)
        except Exception as exc:  # noqa: BLE001 - a dropped database is a state too
            return f"unreadable: {type(exc).__name__}: {exc}"
        return {name: (t.rows, t.checksum) for name, t in sorted(tables.items())}
    store = S3Store(lab.operator_target())
    return [(v.key, v.etag, v.size, v.is_delete_marker)
            for v in store.list_versions(asset.bucket, asset.prefix)]


def describe_difference(before: Any, after: Any) -> str:
    if isinstance(before, list) and isinstance(after, list):
        return f"versions {len(before)} -> {len(after)}"
    return f"{before!r:.120} -> {after!r:.120}"


# -- one drill under a signal ------------------------------------------------------------------

def _events(journal: Path, offset: int, rest: str) -> tuple[list[str], int, str]:
    """New event names appended to the journal since ``offset``."""
    try:
        with journal.open("r", encoding="utf-8") as fh:
            fh.seek(offset)
            chunk = fh.read()
            offset = fh.tell()
    except FileNotFoundError:
        return [], offset, rest
    lines = (rest + chunk).split("\n")
    names = []
    for raw in lines[:-1]:
        rec = json.loads(raw)
        if rec.get("type") == "event":
            names.append(str(rec["event"]))
    return names, offset, lines[-1]


def drill_command(case: Case, inventory: Path, evidence_root: Path) -> list[str]:
    return [sys.executable, "-m", "harness.cli", "run", case.scenario, "--variant", case.variant,
            "--asset", case.asset, "--inventory", str(inventory), "--evidence-dir",
            str(evidence_root), "--quiet"]


def run_drill_process(case: Case, inventory: Path, evidence_root: Path,
                      on_event: Callable[[str, subprocess.Popen[bytes]], bool] | None = None,
                      timeout_s: float = 600) -> tuple[subprocess.Popen[bytes], list[str]]:
    """Run ``drillbook run`` and call ``on_event`` for each journaled event until it returns
    True; returns the finished process and every event seen."""
    evidence_root.mkdir(parents=True, exist_ok=True)
    log = (evidence_root / "drillbook.log").open("wb")
    proc = subprocess.Popen(drill_command(case, inventory, evidence_root), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    seen: list[str] = []
    journal: Path | None = None
    offset, rest, watching = 0, "", on_event is not None
    deadline = time.monotonic() + timeout_s
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if journal is None:
                found = [p for p in evidence_root.glob("*/journal.jsonl")]
                journal = found[0] if found else None
            if journal is not None:
                names, offset, rest = _events(journal, offset, rest)
                for name in names:
                    seen.append(name)
                    if watching and on_event is not None and on_event(name, proc):
                        watching = False
            time.sleep(0.005)
        if proc.poll() is None:
            proc.kill()  # hung: the try is reported as such
        proc.wait()
        if journal is not None:
            names, _, _ = _events(journal, offset, rest)
            seen += names
    finally:
        log.close()
    return proc, seen


def try_signal(lab: Lab, case: Case, signum: int, trigger: Trigger, evidence_root: Path,
               timeout_s: float = 600) -> Try:
    """One drill, one signal at ``trigger``; the target compared with how it was before."""
    inventory = load_inventory(lab.inventory_path)
    asset = inventory.assets[case.asset]
    before = target_state(lab, asset)
    result = Try(case, signum, trigger)
    count = 0

    def on_event(name: str, proc: subprocess.Popen[bytes]) -> bool:
        nonlocal count
        if name != trigger.event:
            return False
        count += 1
        if count < trigger.occurrence:
            return False
        if trigger.delay_s:
            time.sleep(trigger.delay_s)
        if proc.poll() is None:
            os.kill(proc.pid, signum)
            result.sent = True
        return True

    proc, _ = run_drill_process(case, lab.inventory_path, evidence_root, on_event, timeout_s)
    result.exit_code = proc.returncode
    after = target_state(lab, asset)
    result.as_found = after == before
    if not result.as_found:
        result.detail.append(f"target changed: {describe_difference(before, after)}")
    result.sealed, landed, problems = check_evidence(evidence_root)
    result.landed = landed
    result.detail += problems
    return result


def check_evidence(evidence_root: Path) -> tuple[bool, str, list[str]]:
    """(sealed, where the evidence says the signal landed, problems) for the one drill folder."""
    folders = [p for p in evidence_root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    if len(folders) != 1:
        return False, "", [f"{len(folders)} drill folders"]
    folder = folders[0]
    problems = []
    if not (folder / "evidence.json").is_file():
        problems.append("no evidence.json")
    check = signing.verify(folder)
    if check.changed or check.missing or check.unlisted or check.problems:
        problems.append("not sealed: " + "; ".join(check.lines()[:3]))
    if folder.name not in {r.drill_id for r in history.load(evidence_root)}:
        problems.append("no history row")
    landed = ""
    if (folder / "evidence.json").is_file():
        doc = json.loads((folder / "evidence.json").read_text(encoding="utf-8"))
        where = doc["sections"].get("interruption")
        if where is None:
            landed = "after the evidence"
        else:
            landed = where["phase"] + (f"/{where['step']}" if where["step"] else "")
            if where["fault_injected"] and not where["target_as_found"]:
                problems.append("evidence: target NOT verified as found")
    return not problems, landed, problems


# -- the matrix --------------------------------------------------------------------------------

BOUNDARY_PREFIXES = ("phase.", "step.")
REVERT_DELAYS_S = (0.05, 0.3)


def triggers_from(events: list[str]) -> list[Trigger]:
    """Every phase and step boundary of an undisturbed drill, ``fault.injected``, and two points
    inside revert."""
    out: list[Trigger] = []
    seen: Counter[str] = Counter()
    for name in events:
        seen[name] += 1
        if name.startswith(BOUNDARY_PREFIXES) or name == "fault.injected":
            out.append(Trigger(name, seen[name]))
    out += [Trigger("step.revert.started", 1, d) for d in REVERT_DELAYS_S]
    return out


def discover(lab: Lab, case: Case, work: Path) -> list[str]:
    """The events of one undisturbed drill of ``case``."""
    proc, events = run_drill_process(case, lab.inventory_path, work)
    if proc.returncode not in (0, 1, 2):
        raise SystemExit(f"{case.label}: undisturbed drill exited {proc.returncode}; see {work}")
    return events


def run_matrix(lab: Lab, cases: list[Case], signals: list[int], work: Path, *,
               limit: int | None = None, echo: Callable[[str], None] = print) -> list[Try]:
    tries: list[Try] = []
    for case in cases:
        events = discover(lab, case, work / f"{case.scenario}-{case.variant}-discover")
        points = triggers_from(events)[:limit]
        echo(f"{case.label}: {len(points)} trigger points from {len(events)} events")
        for signum in signals:
            for i, trig in enumerate(points):
                root = work / f"{case.scenario}-{case.variant}-{signum}-{i:03d}"
                t = try_signal(lab, case, signum, trig, root)
                tries.append(t)
                echo(t.line())
                if t.ok:
                    shutil.rmtree(root, ignore_errors=True)
    return tries


def summary(tries: list[Try]) -> Iterator[str]:
    keys = sorted({(t.case.label, t.signum) for t in tries})
    yield f"{'scenario':30} {'signal':7} {'tries':>5} {'sent':>5} {'as found':>8} " \
          f"{'sealed':>6} {'exit 130':>8}"
    for label, signum in keys:
        group = [t for t in tries if (t.case.label, t.signum) == (label, signum)]
        sent = [t for t in group if t.sent]
        yield (f"{label:30} {signal.Signals(signum).name:7} {len(group):5} {len(sent):5} "
               f"{sum(t.as_found for t in sent):8} {sum(t.sealed for t in sent):6} "
               f"{sum(t.exit_code == 130 for t in sent):8}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lab-dir", type=Path, help="reuse the lab in this directory")
    p.add_argument("--scenario", action="append", default=[],
                   help="only these scenarios (name or name/variant); repeatable")
    p.add_argument("--signal", action="append", default=[], choices=["SIGINT", "SIGTERM"])
    p.add_argument("--limit", type=int, help="at most this many trigger points per scenario")
    p.add_argument("--work", type=Path, help="where drill folders go (default: a temp dir); "
                                             "folders of tries that passed are removed")
    args = p.parse_args(argv)
    cases = [c for c in CASES if not args.scenario or c.scenario in args.scenario
             or c.label in args.scenario]
    signals = [signal.Signals[s] for s in (args.signal or ["SIGINT", "SIGTERM"])]
    work = args.work or Path(tempfile.mkdtemp(prefix="safety-matrix-"))
    temp_lab = args.lab_dir is None
    lab = Lab(args.lab_dir or Path(tempfile.mkdtemp(prefix="safety-lab-")),
              model_size=4 * 1024 * 1024)
    t0 = time.monotonic()
    try:
        if temp_lab:
            lab.up(progress=lambda m: print(m, flush=True))
        tries = run_matrix(lab, cases, signals, work, limit=args.limit,
                           echo=lambda m: print(m, flush=True))
    finally:
        if temp_lab:
            lab.destroy()
    print(f"\n{len(tries)} tries in {time.monotonic() - t0:.0f} s; failed tries kept in {work}")
    for line in summary(tries):
        print(line)
    bad = [t for t in tries if t.sent and not t.ok]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
