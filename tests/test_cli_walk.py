"""Every subcommand of `drillbook`, found by walking the argparse parser (so a new one is
covered), gets bad values for each of its options: each exits 3 with a message before the
command does anything, and no input gives a traceback. Nothing real runs: drills, the quarterly
drill and the lab are replaced by stand-ins that only record that they were reached."""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from inventory_samples import dump, lab_like
from test_evidence import scripted

import harness.cli.drills
import harness.cli.tools
import harness.gc
import harness.recover
import harness.scenario
import harness.session
import lab.stack
import scenarios.random_tier1
from harness import cli
from harness import cli_args as a
from harness.inventory import load_inventory
from harness.scenario import Scenario
from reports.findings import STATUSES

DOCUMENTED_EXITS = {0, 1, 2, 3}


class Reached(Exception):
    """A stand-in for something that would act (run a drill, touch a lab) was called."""


def _reached(*args: Any, **kwargs: Any) -> Any:
    raise Reached


#: values each argument type must refuse (exit 3, nothing run)
BAD: dict[Callable[[str], Any], list[str]] = {
    a.text: ["", "   ", "a\x1bb", "a\nb"],
    a.name: ["", "a b", "../x", "x/y", "\x00"],
    a.iso_date: ["", "notadate", "2026-13-45", "2026-02-30", "31/12/2026"],
    a.participant: ["", "no-role", ":role", "name:"],
    a.existing_file: ["", "/nonexistent/file", "/etc", "/dev/null"],
    a.existing_dir: ["", "/nonexistent/dir", "/etc/passwd"],
    a.output_dir: ["", "/etc/passwd", "/etc/passwd/sub", "a\x00b"],
    a.output_prefix: ["", "/etc/passwd/key", ".", "/etc/passwd/x/y"],
    a.seed: ["", "x", "-1", "1.5", "nan", str(2**64)],
    a.fraction_or_more: ["", "-5", "nan", "inf", "x", "-0.1"],
    a.seconds: ["", "-1", "nan", "-inf", "x"],
    a.size: ["", "-5MiB", "infMiB", "nanGiB", "8XB", "0B", "100GiB", "1e400MiB"],
    a.any_path: ["", "\x1b"],
    a.assignment: ["", "novalue", "=x", "a b=1", "k=", "k=\x1b"],
}
#: values any option might get: whatever they do, never a traceback nor an undocumented exit
GENERIC = ["", "-", "--", "x", "-5", "0", "nan", "/etc/passwd", "/", "/nonexistent/x",
           "x" * 5000, "\udcff", "2026-13-45", "../../..", "*"]


@dataclass
class Leaf:
    path: tuple[str, ...]
    parser: argparse.ArgumentParser
    inherited: list[argparse.Action]  # options of the parent parsers (lab --dir)


def leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = (),
           inherited: list[argparse.Action] | None = None) -> Iterator[Leaf]:
    inherited = inherited or []
    subs = [x for x in parser._actions if isinstance(x, argparse._SubParsersAction)]
    own = [x for x in parser._actions
           if x.option_strings and not isinstance(x, argparse._HelpAction)]
    if not subs:
        yield Leaf(path, parser, inherited)
        return
    for sub in subs:
        for name, child in sub.choices.items():
            yield from leaves(child, path + (name,), inherited + own)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("walk")
    inv = root / "inventory.yaml"
    inv.write_bytes(dump(lab_like(root)))
    drill = scripted(root / "drill").directory
    return {"inventory": inv, "drill": drill, "root": root}


def baseline(leaf: Leaf, w: dict[str, Path]) -> list[str]:
    """A command line for ``leaf`` with good values, which reaches the command."""
    root = w["root"]
    head = list(leaf.path)
    if head[0] == "lab":
        return ["lab", "--dir", str(root / "lab"), *head[1:]]
    good: dict[tuple[str, ...], list[str]] = {
        ("run",): ["artifact-deletion", "--asset", "lab-mlp-weights", "--inventory",
                   str(w["inventory"]), "--evidence-dir", str(root / "ev")],
        ("drill",): ["--random-tier1", "--inventory", str(w["inventory"]), "--evidence-dir",
                     str(root / "ev")],
        ("inventory", "check"): [str(w["inventory"])],
        ("report",): [str(w["drill"])],
        ("verify",): [str(w["drill"])],
        ("keygen",): ["--out", str(root / "keys" / "k")],
        ("history",): ["--evidence-dir", str(root / "ev")],
        ("recover",): ["--inventory", str(w["inventory"]), "--evidence-dir", str(root / "ev"),
                       "--dry-run"],
        ("scenarios",): [],
        ("gc",): ["--inventory", str(w["inventory"]), "--dry-run"],
    }
    return head + good[leaf.path]


def invoke(argv: list[str]) -> tuple[int, str, bool]:
    """(exit code, stderr, whether a stand-in was reached)."""
    err = io.StringIO()
    reached = False
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 3
        except Reached:
            code, reached = 0, True
    return code, err.getvalue(), reached


def with_value(argv: list[str], leaf: Leaf, action: argparse.Action, value: str) -> list[str]:
    """``argv`` with ``action`` given ``value`` (replacing a good value already there)."""
    if not action.option_strings:  # a positional: replace the good one
        positionals = [x for x in leaf.parser._actions if not x.option_strings]
        i = len(leaf.path) + positionals.index(action)
        if leaf.path[0] == "lab":
            i += 2
        return argv[:i] + [value] + argv[i + 1:]
    opt = action.option_strings[-1]
    out = list(argv)
    if opt in out:
        j = out.index(opt)
        del out[j:j + 2]
    if action in leaf.inherited:  # a parent's option goes before the subcommand
        return out[:1] + [f"{opt}={value}"] + out[1:]
    return out + [f"{opt}={value}"]


@pytest.fixture(scope="module")
def installed() -> dict[str, tuple[type[Scenario], ...]]:
    return harness.scenario.implementations()


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, world: dict[str, Path],
              installed: dict[str, tuple[type[Scenario], ...]]) -> None:
    # the walk runs the command hundreds of times with one set of installed scenarios and one
    # inventory: scan the installed distributions once, and parse each inventory path once (a
    # path that fails to load is tried each time: errors are not cached). Discovery and loading
    # have tests of their own; here they were most of the time.
    for module in (harness.scenario, harness.cli.drills):
        monkeypatch.setattr(module, "implementations", lambda: dict(installed))
    monkeypatch.setattr(harness.session, "discover", harness.scenario.discover)
    loads = functools.lru_cache(maxsize=None)(load_inventory)
    for module in (harness.cli.drills, harness.cli.tools):
        monkeypatch.setattr(module, "load_inventory", loads)
    monkeypatch.setattr(harness.session, "run_drill", _reached)
    monkeypatch.setattr(scenarios.random_tier1, "run_random_tier1", _reached)
    monkeypatch.setattr(lab.stack, "Lab", _reached)
    monkeypatch.setattr(harness.recover, "recover_all", _reached)
    monkeypatch.setattr(harness.gc, "collect", _reached)
    monkeypatch.delenv("DRILLBOOK_SIGNING_KEY", raising=False)
    monkeypatch.delenv("DRILLBOOK_PUBLIC_KEY", raising=False)
    monkeypatch.setenv("DRILLBOOK_INVENTORY", str(world["inventory"]))
    monkeypatch.chdir(tmp_path)


def test_every_subcommand_is_walked() -> None:
    found = {leaf.path for leaf in leaves(cli.build_parser())}
    assert {("run",), ("drill",), ("inventory", "check"), ("report",), ("verify",),
            ("keygen",), ("history",), ("lab", "up"), ("lab", "destroy")} <= found


def test_every_option_with_a_value_is_checked_while_parsing() -> None:
    """New options must come with a type from harness.cli_args (or choices), so the walk can
    give them bad values."""
    for leaf in leaves(cli.build_parser()):
        for action in leaf.parser._actions + leaf.inherited:
            if action.nargs == 0 or isinstance(action, (argparse._HelpAction,
                                                        argparse._SubParsersAction)):
                continue
            assert action.type in BAD or action.choices, (leaf.path, action.dest)


def test_finding_statuses_match_the_findings_module() -> None:
    assert a.FINDING_STATUSES == STATUSES


def test_walk_bad_values_exit_3_before_anything_runs(world: dict[str, Path],
                                                     stand_ins: None) -> None:
    counts: Counter[str] = Counter()
    for leaf in leaves(cli.build_parser()):
        good = baseline(leaf, world)
        code, err, reached = invoke(good)
        assert "Traceback" not in err and code in DOCUMENTED_EXITS, (good, code, err)
        for action in leaf.parser._actions + leaf.inherited:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if action.nargs == 0:  # a flag: a value for it is a usage error
                bad = [f"{action.option_strings[-1]}=x"]
                cases = [good + bad]
            else:
                values = BAD.get(action.type, []) if action.type else []
                if action.choices:
                    values = values + ["bogus"]
                cases = [with_value(good, leaf, action, v) for v in values]
            for argv in cases:
                code, err, reached = invoke(argv)
                counts["bad"] += 1
                assert not reached, f"{argv}: a bad value reached the command"
                assert code == 3, (argv, code, err)
                assert "Traceback" not in err and "drillbook: " in err, (argv, err)
        for argv in ([*good, "--no-such-option"], [*leaf.path[:1], "no-such-subcommand"]):
            code, err, reached = invoke(argv)
            counts["bad"] += 1
            assert code == 3 and not reached and "Traceback" not in err, (argv, code, err)
    print(f"\ncli walk: {counts['bad']} bad command lines, each exit 3, none ran")
    assert counts["bad"] > 150


def test_walk_any_value_gives_no_traceback(world: dict[str, Path], stand_ins: None) -> None:
    seen: Counter[int] = Counter()
    for leaf in leaves(cli.build_parser()):
        good = baseline(leaf, world)
        for action in leaf.parser._actions + leaf.inherited:
            if action.nargs == 0 or isinstance(action, (argparse._HelpAction,
                                                        argparse._SubParsersAction)):
                continue
            for value in GENERIC:
                argv = with_value(good, leaf, action, value)
                code, err, _ = invoke(argv)
                seen[code] += 1
                assert "Traceback" not in err, (argv, err)
                assert code in DOCUMENTED_EXITS, (argv, code, err)
    print(f"\ncli walk (any value): exit codes {dict(seen)}")
    assert seen[3] > 0


REPORTED = [
    ["run", "artifact-deletion", "--evidence-dir", "/etc/passwd"],
    ["run", "artifact-deletion", "--variant", ""],
    ["history", "--tolerance", "-5"],
    ["drill", "--random-tier1", "--seed", "soon"],
    ["lab", "--dir", "/etc/passwd", "status"],
    ["verify", "/nonexistent/drill"],
]


@pytest.mark.parametrize("argv", REPORTED)
def test_the_reported_command_lines_exit_3_without_a_traceback(
        argv: list[str], stand_ins: None) -> None:
    """In process (cli.main is the command's entry point; the process itself: below)."""
    code, err, reached = invoke(argv)
    assert code == 3 and not reached, err
    assert "Traceback" not in err and "drillbook: " in err, err


def test_the_drillbook_command_exits_3_without_a_traceback(tmp_path: Path) -> None:
    """One reported command line through the installed ``drillbook`` command, as a process:
    the entry point turns main()'s exit code into the process's, with no traceback."""
    exe = Path(sys.executable).with_name("drillbook")
    proc = subprocess.run([str(exe), *REPORTED[4]], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and "drillbook: " in proc.stderr, proc.stderr


def test_report_due_must_be_a_date(world: dict[str, Path], stand_ins: None) -> None:
    code, err, _ = invoke(["report", str(world["drill"]), "--for", "F1", "--action", "x",
                           "--due", "notadate"])
    assert code == 3 and "not a date" in err


def test_verify_help_documents_its_exit_codes() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["verify", "--help"]) == 0
    text = out.getvalue()
    assert "exit codes" in text and "pinned" in text and "any name" in text


@pytest.mark.parametrize("name, content", [
    ("evidence.json", b"garbage"),
    ("evidence.json", b"\xff\xfe"),
    ("evidence.json", b"[1, 2]"),
    ("findings.yaml", b"findings: [: : :\n"),
    ("findings.yaml", b"findings: 7\n"),
])
def test_a_corrupt_drill_folder_is_a_usage_error(tmp_path: Path, name: str,
                                                 content: bytes) -> None:
    folder = scripted(tmp_path).directory
    (folder / name).write_bytes(content)
    code, err, _ = invoke(["report", str(folder)])
    assert code == 3 and "Traceback" not in err and "drillbook: " in err, err


def test_a_corrupt_history_database_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "history.sqlite").write_bytes(b"not a database")
    code, err, _ = invoke(["history", "--evidence-dir", str(tmp_path)])
    assert code == 3 and "not a drill history database" in err
