"""Signals during a drill, with an in-memory scenario and real signals (no lab): the process sends
itself SIGINT, SIGTERM or SIGHUP at every phase, inside a runbook step, inside revert and while the
evidence is sealed. Before inject the drill stops at once and breaks nothing; from inject on the
signal is held, the drill stops at its next safe point, revert runs exactly once and the evidence
is written and sealed, saying where the drill was interrupted and whether the target is as found.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar

import pytest

from harness import cli, history, lease, session
from harness.errors import StepFailed
from harness.inventory import Inventory, load_inventory
from harness.lease import MemoryResolver
from harness.model import EXIT_INTERRUPTED, Evidence, RestorePoint, Verdict, utc_now
from harness.runner import DrillRequest, DrillResult, run_drill
from harness.scenario import RunbookStep, Scenario
from harness.signals import DrillSignals, Interrupted, held
from reports.render import write_evidence

INVENTORY = """\
version: 1
site: unit
targets:
  store: {kind: s3, endpoint: "http://127.0.0.1:9", access_key: a, secret_key: b, drill_safe: true}
assets:
  - {id: w, tier: 1, kind: model-weights, store: store, bucket: b, prefix: p/}
objectives:
  tiers: {1: {rto_s: 60, rpo_s: 3600}}
probe: {interval_s: 0.01, detect_timeout_s: 5}
"""

FOUND = {"p/manifest.json": "m1", "p/shard-0": "s0", "p/shard-1": "s1"}


class Escaped(Exception):
    """A signal reached the test's own handler: the drill did not hold it."""


@pytest.fixture(autouse=True)
def trap() -> Iterator[None]:
    """Outside a drill a stray SIGTERM or SIGHUP fails the test instead of killing pytest."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise Escaped(signal.Signals(signum).name)

    before = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    yield
    for s, h in before.items():
        signal.signal(s, h)


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    p = tmp_path / "inv.yaml"
    p.write_text(INVENTORY)
    return load_inventory(p)


def send(signum: int, times: int) -> None:
    """Send the process ``signum`` ``times`` times, apart: while held, the signal is blocked,
    and the same signal sent twice before it is taken is one pending signal, as with any
    process."""
    for i in range(times):
        if i:
            time.sleep(0.3)
        os.kill(os.getpid(), signum)


class Fake(Scenario):
    """A drill of an in-memory store that sends the process ``signum`` (``times`` times) when it
    reaches ``kill_at``: a phase, a runbook step, revert or the evidence sink."""

    name: ClassVar[str] = "fake-signals"
    summary: ClassVar[str] = "test double"
    variants: ClassVar[tuple[str, ...]] = ("only",)
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    kill_at: ClassVar[str | None] = None
    signum: ClassVar[int] = signal.SIGTERM
    times: ClassVar[int] = 1
    revert_breaks: ClassVar[bool] = False
    calls: ClassVar[list[str]] = []
    store: ClassVar[dict[str, str]] = {}

    def _reach(self, point: str) -> None:
        self.calls.append(point)
        if point == self.kill_at:
            send(self.signum, self.times)

    def preflight(self) -> None:
        self._reach("preflight")

    def baseline(self) -> None:
        self._reach("baseline")
        self.found = dict(self.store)

    def inject(self) -> None:
        self._reach("inject")  # the signal comes first: the fault must still be put in whole
        for key in list(self.store):
            del self.store[key]

    def detect(self) -> bool:
        self._reach("detect")
        return self.calls.count("detect") >= 3

    def runbook(self) -> list[RunbookStep]:
        def locate() -> None:
            self._reach("locate")
            self.ctx.findings.restore_point = RestorePoint("test", "x", utc_now(), "here")

        def restore() -> None:
            self._reach("restore")
            self.store.update(self.found)
        return [RunbookStep("locate", locate), RunbookStep("restore", restore)]

    def verify(self) -> None:
        self._reach("verify")
        if self.store != self.found:
            self.ctx.fail("store differs from the baseline")

    def revert(self) -> None:
        self._reach("revert")
        if self.revert_breaks:
            raise StepFailed("cannot put the store back")
        self.store.clear()
        self.store.update(self.found)
        if self.store != self.found:
            raise StepFailed("store still differs")


def make(**attrs: object) -> type[Fake]:
    return type("F", (Fake,), {"calls": [], "store": dict(FOUND), **attrs})


class Sink:
    """Seals like the CLI does; sends the signal itself when the scenario asks for "sink"."""

    def __init__(self, cls: type[Fake]) -> None:
        self.cls = cls
        self.calls = 0

    def __call__(self, evidence: Evidence, directory: Path) -> None:
        self.calls += 1
        if self.cls.kill_at == "sink":
            send(self.cls.signum, self.cls.times)
        write_evidence(evidence, directory)


def drill(inventory: Inventory, cls: type[Fake], tmp_path: Path) -> tuple[DrillResult, Sink]:
    sink = Sink(cls)
    result = run_drill(inventory, DrillRequest(cls, "only", "w", tmp_path / "ev"),
                       progress=lambda m: None, sink=sink, lease_resolver=MemoryResolver())
    return result, sink


def sealed(result: DrillResult) -> dict[str, Any]:
    """The evidence as written: evidence.json and SHA256SUMS exist and agree with the result."""
    assert (result.directory / "SHA256SUMS").is_file()
    doc: dict[str, Any] = json.loads((result.directory / "evidence.json").read_text())
    assert doc["verdict"] == result.evidence.verdict.value
    return doc


AFTER_INJECT = [  # where the signal comes -> where the drill stops, and what must not have run
    ("inject", "while waiting for the fault to be detected", "detect"),
    ("detect", "while waiting for the fault to be detected", "locate"),
    ("locate", "before runbook step 'restore'", "restore"),
    ("restore", "before verify", "verify"),
    ("verify", None, None),
    ("revert", None, None),
]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize(("kill_at", "stopped", "skipped"), AFTER_INJECT)
def test_signal_after_inject_stops_at_a_safe_point_reverts_once_and_seals(
        inventory: Inventory, tmp_path: Path, signum: int, kill_at: str, stopped: str | None,
        skipped: str | None) -> None:
    cls = make(kill_at=kill_at, signum=signum)
    result, sink = drill(inventory, cls, tmp_path)
    assert result.interrupted
    assert cls.calls.count("revert") == 1 and cls.calls[-1] == "revert"
    assert cls.calls.count("inject") == 1
    if skipped is not None:
        assert skipped not in cls.calls, cls.calls
    assert cls.store == FOUND
    assert sink.calls == 1
    doc = sealed(result)
    assert result.evidence.verdict is Verdict.INCONCLUSIVE
    section = doc["sections"]["interruption"]
    name = signal.Signals(signum).name
    assert section["signal"] == name and section["fault_injected"] is True
    assert section["target_as_found"] is True and section["stopped"] == stopped
    phase = {"locate": "runbook", "restore": "runbook"}.get(kill_at, kill_at)
    assert section["phase"] == phase
    assert section["step"] == ({"locate": "locate", "restore": "restore",
                                "revert": "revert"}.get(kill_at))
    reason = next(r for r in doc["reasons"] if r.startswith("interrupted"))
    assert f"interrupted by {name} during {phase}" in reason
    assert "revert ran and verified the target as found" in reason
    assert doc["reverted"] is True
    journal = [json.loads(x) for x in (result.directory / "journal.jsonl").read_text().splitlines()]
    assert [j["signal"] for j in journal if j["type"] == "signal"] == [name]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("kill_at", ["preflight", "baseline"])
def test_signal_before_inject_aborts_at_once_breaks_nothing_and_seals(
        inventory: Inventory, tmp_path: Path, signum: int, kill_at: str) -> None:
    cls = make(kill_at=kill_at, signum=signum)
    result, _ = drill(inventory, cls, tmp_path)
    assert result.interrupted
    assert cls.calls[-1] == kill_at  # nothing after the signal ran: not even the rest of the phase
    assert "inject" not in cls.calls and "revert" not in cls.calls
    assert cls.store == FOUND
    doc = sealed(result)
    section = doc["sections"]["interruption"]
    assert section["fault_injected"] is False and section["target_as_found"] is None
    assert section["stopped"] == "at once" and section["phase"] == kill_at
    assert any("before the fault was injected: nothing was broken" in r for r in doc["reasons"])
    assert result.evidence.verdict is Verdict.INCONCLUSIVE


def test_sighup_is_held_like_sigterm(inventory: Inventory, tmp_path: Path) -> None:
    cls = make(kill_at="locate", signum=signal.SIGHUP)
    result, _ = drill(inventory, cls, tmp_path)
    assert result.interrupted and cls.calls.count("revert") == 1 and cls.store == FOUND
    assert sealed(result)["sections"]["interruption"]["signal"] == "SIGHUP"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM],
                         ids=["SIGINT", "SIGTERM"])
def test_signal_while_evidence_is_sealed_still_seals(inventory: Inventory, tmp_path: Path,
                                                      signum: int) -> None:
    cls = make(kill_at="sink", signum=signum)
    result, sink = drill(inventory, cls, tmp_path)
    assert sink.calls == 1 and result.interrupted
    doc = sealed(result)
    assert doc["verdict"] == "PASS"  # the drill was complete before the signal came
    assert cls.calls.count("revert") == 1 and cls.store == FOUND


def test_repeated_signals_say_what_drillbook_waits_for(inventory: Inventory, tmp_path: Path,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    cls = make(kill_at="revert", times=3)
    result, _ = drill(inventory, cls, tmp_path)
    err = capfd.readouterr().err
    assert "SIGTERM during revert (step 'revert'): stopping at the next safe point" in err
    assert err.count("SIGTERM again: revert in progress: restoring w (s3://b/p/); drillbook "
                     "will exit when the target is back and evidence is sealed") == 2
    assert cls.calls.count("revert") == 1 and cls.store == FOUND
    assert len(sealed(result)["sections"]["interruption"]["signals"]) == 3


def test_second_signal_in_the_runbook_waits_for_the_step(inventory: Inventory, tmp_path: Path,
                                                         capfd: pytest.CaptureFixture[str]) -> None:
    cls = make(kill_at="locate", times=2, signum=signal.SIGINT)
    result, _ = drill(inventory, cls, tmp_path)
    assert "SIGINT again: waiting for step 'locate' to reach a safe point" in capfd.readouterr().err
    assert "restore" not in cls.calls and cls.calls.count("revert") == 1
    assert result.interrupted and cls.store == FOUND


def test_revert_that_fails_after_a_signal_says_the_target_may_be_damaged(
        inventory: Inventory, tmp_path: Path) -> None:
    cls = make(kill_at="locate", revert_breaks=True)
    result, _ = drill(inventory, cls, tmp_path)
    doc = sealed(result)
    assert doc["verdict"] == "FAIL" and doc["reverted"] is False
    assert doc["sections"]["interruption"]["target_as_found"] is False
    assert any("revert did NOT verify the target as found" in r for r in doc["reasons"])


def test_keyboard_interrupt_raised_inside_revert_never_escapes(inventory: Inventory,
                                                               tmp_path: Path) -> None:
    class Raising(Fake):
        calls: ClassVar[list[str]] = []
        store: ClassVar[dict[str, str]] = dict(FOUND)

        def revert(self) -> None:
            self.calls.append("revert")
            raise KeyboardInterrupt

    result, sink = drill(inventory, Raising, tmp_path)
    assert sink.calls == 1 and not result.interrupted
    doc = sealed(result)
    assert doc["verdict"] == "FAIL" and doc["reverted"] is False
    revert = next(s for s in doc["steps"] if s["name"] == "revert")
    assert revert["outcome"] == "error" and "interrupted" in revert["message"]


def test_handlers_are_given_back_after_the_drill(inventory: Inventory, tmp_path: Path) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    drill(inventory, make(kill_at="locate"), tmp_path)
    assert {s: signal.getsignal(s) for s in before} == before


def test_checkpoint_and_abortable(capfd: pytest.CaptureFixture[str]) -> None:
    with DrillSignals(where=lambda: ("runbook", "pull")) as sig:
        sig.checkpoint("before anything")  # nothing received: a no-op
        os.kill(os.getpid(), signal.SIGTERM)  # held: does not raise here
        assert sig.stop_requested and sig.first is not None and sig.first.step == "pull"
        with pytest.raises(Interrupted) as info:
            sig.checkpoint("before runbook step 'verify'")
        assert info.value.stopped == "before runbook step 'verify'"
    with DrillSignals(where=lambda: ("baseline", None)) as sig, \
            pytest.raises(Interrupted) as info, sig.abortable():
        os.kill(os.getpid(), signal.SIGINT)
        raise AssertionError("not reached: the signal aborts at once")
    assert info.value.stopped == "at once" and info.value.received.aborted
    assert "before the fault was injected: nothing is broken" in capfd.readouterr().err


def test_held_holds_every_drill_signal(capfd: pytest.CaptureFixture[str]) -> None:
    with held("putting the target back") as got:
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            os.kill(os.getpid(), s)
    assert got == [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    assert capfd.readouterr().err.count("putting the target back") == 3


@pytest.mark.parametrize(("kill_at", "line"), [
    ("restore", ("interrupted: SIGTERM during runbook; revert ran; the target was verified as "
                 "found")),
    ("baseline", "interrupted: SIGTERM before the fault was injected; nothing was broken")])
def test_cli_run_exits_130_with_sealed_evidence(inventory: Inventory, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str],
                                                kill_at: str, line: str) -> None:
    cls = make(kill_at=kill_at)
    monkeypatch.setattr(session, "get_scenario", lambda name: cls)
    # the test inventory's store does not exist: leases in memory, as for drill()
    monkeypatch.setattr(lease, "LeaseResolver", lambda *args: MemoryResolver())
    code = cli.main(["run", "fake-signals", "--inventory", str(inventory.path),
                     "--evidence-dir", str(tmp_path / "ev"), "--quiet"])
    assert code == EXIT_INTERRUPTED
    out = capsys.readouterr().out
    assert line in out and "verdict: INCONCLUSIVE" in out
    folders = [p for p in (tmp_path / "ev").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(folders) == 1
    assert (folders[0] / "evidence.json").is_file() and (folders[0] / "SHA256SUMS").is_file()
    rows = history.load(tmp_path / "ev")
    assert [r.drill_id for r in rows] == [folders[0].name]
    assert cls.store == FOUND


def test_schema_requires_the_interruption_fields(inventory: Inventory, tmp_path: Path) -> None:
    from reports.validate import schema_errors

    result, _ = drill(inventory, make(kill_at="locate"), tmp_path)
    doc = sealed(result)
    assert schema_errors(doc) == []
    del doc["sections"]["interruption"]["target_as_found"]
    assert any("sections/interruption" in e and "target_as_found" in e
               for e in schema_errors(doc))


def _blocked_in_child() -> set[str]:
    """The signals a child process started now has blocked (from /proc, no signal sent)."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c",
                          "print(open('/proc/self/status').read())"],
                         check=True, capture_output=True, text=True).stdout
    mask = int(next(ln for ln in out.splitlines() if ln.startswith("SigBlk:")).split()[1], 16)
    return {s.name for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
            if mask & (1 << (s - 1))}


def test_children_started_while_signals_are_held_ignore_a_terminal_ctrl_c() -> None:
    """A Ctrl-C typed in a terminal goes to drillbook's whole process group: a pg_restore or
    restic that a revert waits for must not die of it, so children inherit the signals blocked;
    before inject (abortable) they do not."""
    with DrillSignals() as sig:
        assert _blocked_in_child() == {"SIGINT", "SIGTERM", "SIGHUP"}
        with sig.abortable():
            assert _blocked_in_child() == set()
        assert _blocked_in_child() == {"SIGINT", "SIGTERM", "SIGHUP"}
    assert _blocked_in_child() == set()
