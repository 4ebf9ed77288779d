"""The inventory loader cannot be crashed: hostile files and property-based mutations of a
lab-like inventory (bytes and structure) either load or raise InventoryError with file, line and
field, each within a second; `drillbook inventory check` exits 3 with that message and no
traceback."""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from inventory_samples import BAD_FILES, dump, lab_like

from harness import cli
from harness.errors import InventoryError
from harness.inventory import Inventory, load_inventory

#: each load must do at most this much work, in CPU seconds (the issue: "within a second");
#: CPU time, not wall time, because the test machine is shared and often loaded
BOUND_S = 1.0
#: CPU time after which a load counts as hung and is stopped (a virtual timer, SIGVTALRM, so
#: pytest-timeout's SIGALRM stays armed for loads blocked without using CPU)
HANG_S = 10.0
COUNTS: Counter[str] = Counter()
#: rejections only the JSON Schema made: the loader's own checks missed something the published
#: schema says (or the schema is stricter than the loader); both are drift, so none may happen
SCHEMA_ONLY: list[str] = []
_MESSAGE = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<field>\(top level\)|[^\s:]+): (?P<message>.+)$",
                      re.DOTALL)


class Hung(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hung


def load_bounded(path: Path) -> Inventory | InventoryError:
    """Load ``path``; return the inventory or the InventoryError. Anything else propagates
    (a traceback is a test failure); a load past HANG_S is stopped and fails as a hang."""
    old = signal.signal(signal.SIGVTALRM, _alarm)
    signal.setitimer(signal.ITIMER_VIRTUAL, HANG_S)
    t0 = time.process_time()
    try:
        return load_inventory(path)
    except InventoryError as exc:
        return exc
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, old)
        elapsed = time.process_time() - t0
        COUNTS["slowest_ms"] = max(COUNTS["slowest_ms"], int(elapsed * 1000))
        assert elapsed < BOUND_S, f"{path} took {elapsed:.2f} s of CPU"


def check_rejection(err: InventoryError, path: Path) -> None:
    assert err.file == path
    assert err.line >= 1, str(err)
    assert err.field and err.message, str(err)
    m = _MESSAGE.match(str(err))
    assert m is not None and m["file"] == str(path) and int(m["line"]) == err.line, str(err)


def outcome(path: Path, kind: str) -> Inventory | InventoryError:
    result = load_bounded(path)
    COUNTS[f"{kind}_inputs"] += 1
    if isinstance(result, InventoryError):
        COUNTS[f"{kind}_rejected"] += 1
        check_rejection(result, path)
        if "inventory schema" in result.message:
            COUNTS[f"{kind}_schema_only"] += 1
            SCHEMA_ONLY.append(str(result))
    return result


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, Any]]]:
    root = tmp_path_factory.mktemp("fuzz")
    doc = lab_like(root)
    path = root / "inventory.yaml"
    path.write_bytes(dump(doc))
    yield path, doc


def test_the_lab_like_inventory_is_valid(base: tuple[Path, dict[str, Any]]) -> None:
    path, _ = base
    inv = load_bounded(path)
    assert isinstance(inv, Inventory), str(inv)
    assert len(inv.assets) == 7 and inv.safety_bucket == "drillbook-safety"


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_hostile_files_are_located_rejections(name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(BAD_FILES[name])
    result = outcome(path, "hostile")
    assert isinstance(result, InventoryError), name
    if name in ("billion-laughs",):
        assert "expands to more than" in result.message
    if name.startswith("recursive"):
        assert "recursive alias" in result.message
    if name.startswith("deep"):
        assert "nested deeper" in result.message
    if name == "bad-date":
        assert result.field == "exercise.planned_date" and result.line == 3
    if name in ("not-utf8", "nul", "control"):
        assert result.field == "(encoding)" and result.line == 2


def test_files_that_are_not_regular_files(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero"), tmp_path):
        with pytest.raises(InventoryError, match="not a regular file"):
            load_inventory(path)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * (2 << 20))
    with pytest.raises(InventoryError, match="larger than"):
        load_inventory(big)


# --- structure-level mutations -------------------------------------------------------------------

NASTY: list[Any] = [None, "", " ", "x", "../../etc/passwd", "a\x00b", "\ud800", "x" * 300, 0, -1,
                    1, 7, 2**70, 1e308, -0.0, math.nan, math.inf, -math.inf, True, False, [], {},
                    [["x"]], [None], {"a": 1}, {1: 2}, date(2026, 11, 25), "2026-13-45",
                    "http://", "s3:", "nowhere", "drillbook-models"]


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


def _mutate(doc: dict[str, Any], path: tuple[Any, ...], how: str, value: Any) -> dict[str, Any]:
    new = copy.deepcopy(doc)
    if not path:
        return value if how == "replace" else new
    parent: Any = new
    for p in path[:-1]:
        parent = parent[p]
    last = path[-1]
    if how == "replace":
        parent[last] = value
    elif how == "delete":
        del parent[last]
    elif how == "add" and isinstance(parent, dict):
        parent[f"extra_{len(parent)}"] = value
    elif how == "add":
        parent.append(value)
    return new


#: no example database written, no deadline (each load is bounded by load_bounded instead);
#: how many examples and whether they are the same on every run come from the hypothesis profile
#: (conftest.py: "dev", deterministic, by default; "nightly", deeper and new inputs each run)
FUZZ: dict[str, Any] = {"deadline": None, "database": None,
                        "suppress_health_check": [HealthCheck.function_scoped_fixture,
                                                  HealthCheck.too_slow]}
STRUCTURE_N = settings.default.max_examples
BYTES_N = STRUCTURE_N * 3 // 2  # byte mutations are cheaper: most are rejected while parsing


def enough(n: int) -> int:
    """How many inputs a property must have seen: hypothesis may stop a little short of
    max_examples when it has run out of new inputs, never far."""
    return n * 7 // 8


def check_counts(kind: str, at_least: int) -> None:
    inputs, rejected = COUNTS[f"{kind}_inputs"], COUNTS[f"{kind}_rejected"]
    print(f"\ninventory fuzz ({kind}): {inputs} inputs, {rejected} rejected, "
          f"{inputs - rejected} accepted, slowest load {COUNTS['slowest_ms']} ms CPU")
    assert inputs >= at_least
    assert not SCHEMA_ONLY, SCHEMA_ONLY[:5]
    assert 0 < rejected < inputs  # both outcomes were reached: the mutations are not all fatal


def test_structure_mutations_load_or_are_located(base: tuple[Path, dict[str, Any]]) -> None:
    structure_fuzz(base=base)
    check_counts("structure", enough(STRUCTURE_N))


@settings(max_examples=STRUCTURE_N, **FUZZ)
@given(data=st.data())
def structure_fuzz(data: st.DataObject, base: tuple[Path, dict[str, Any]]) -> None:
    path, doc = base
    paths = _paths(doc)
    mutated = doc
    for _ in range(data.draw(st.integers(1, 3))):
        target = data.draw(st.sampled_from(paths))
        how = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        value = data.draw(st.sampled_from(NASTY) | st.text(max_size=8) | st.integers())
        try:
            mutated = _mutate(mutated, target, how, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    out = path.with_name("structure.yaml")
    out.write_bytes(dump(mutated))
    outcome(out, "structure")


# --- byte-level mutations ------------------------------------------------------------------------

SNIPPETS = [b"\x00", b"\xff\xfe", b"\xc3", b"\x85", b"\t", b"&a ", b"*a", b"*zz", b"<<: *a\n",
            b"!!python/object:os.system ", b"!x ", b"[", b"]", b"{", b"}", b": ", b"- ", b"\n",
            b"  ", b"---\n", b"...\n", b"? ", b".nan", b"-.inf", b"2026-13-45", b"0x", b"~",
            b"'", b'"', b"\\", b"#", b"|", b">", b"%YAML 1.1\n", b"[" * 200, b"\xe2\x80\xa8"]


def test_byte_mutations_load_or_are_located(base: tuple[Path, dict[str, Any]]) -> None:
    byte_fuzz(base=base)
    check_counts("bytes", enough(BYTES_N))


@settings(max_examples=BYTES_N, **FUZZ)
@given(data=st.data())
def byte_fuzz(data: st.DataObject, base: tuple[Path, dict[str, Any]]) -> None:
    path, _ = base
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw)))
        op = data.draw(st.sampled_from(["flip", "insert", "snippet", "delete", "repeat"]))
        if op == "flip" and at < len(raw):
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "snippet":
            raw[at:at] = data.draw(st.sampled_from(SNIPPETS))
        elif op == "delete":
            del raw[at:at + data.draw(st.integers(1, 64))]
        elif op == "repeat":
            raw[at:at] = raw[at:at + data.draw(st.integers(1, 200))]
    out = path.with_name("bytes.yaml")
    out.write_bytes(bytes(raw))
    outcome(out, "bytes")


# --- the command line ----------------------------------------------------------------------------

CLI_CASES = ["not-utf8", "nul", "billion-laughs", "recursive-alias", "deep", "nodes-list-of-lists",
             "bad-date"]


def _check_cli_output(code: int, stderr: str, path: Path) -> None:
    assert code == 3, (path.name, stderr)
    assert "Traceback" not in stderr, stderr
    line = stderr.strip().splitlines()[-1]
    m = _MESSAGE.match(line.removeprefix("drillbook: "))
    assert m is not None and m["file"] == str(path), line
    COUNTS["cli_checked"] += 1


@pytest.mark.parametrize("name", CLI_CASES)
def test_inventory_check_exits_3_with_a_located_message(name: str, tmp_path: Path) -> None:
    """In process: what the command says and its exit code (the process itself: below)."""
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(BAD_FILES[name])
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["inventory", "check", str(path)])
    _check_cli_output(code, err.getvalue(), path)


def test_the_drillbook_command_exits_3_for_a_hostile_inventory(tmp_path: Path) -> None:
    """The installed command, as a process: its exit status and its last stderr line."""
    exe = Path(sys.executable).with_name("drillbook")
    path = tmp_path / "billion-laughs.yaml"
    path.write_bytes(BAD_FILES["billion-laughs"])
    t0 = time.monotonic()
    proc = subprocess.run([str(exe), "inventory", "check", str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    elapsed = time.monotonic() - t0
    _check_cli_output(proc.returncode, proc.stderr, path)
    assert elapsed < 30, elapsed  # interpreter start-up included, on a busy machine
