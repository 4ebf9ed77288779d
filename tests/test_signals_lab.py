"""Signals against the real lab: ``drillbook run`` as a subprocess gets SIGTERM or SIGINT the moment
its journal shows a phase or step boundary (or a little after revert starts), and afterwards the
target is as found (S3 version lists, or table checksums), the evidence is sealed and the exit code
is 130. A representative subset of bench/safety_matrix.py, which runs every boundary."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from lab.stack import Lab

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from safety_matrix import Case, Trigger, try_signal

pytestmark = pytest.mark.lab

SOFT = Case("artifact-deletion", "soft", "lab-mlp-weights")
PURGE = Case("artifact-deletion", "purge", "lab-mlp-weights")
ADAPTER = Case("adapter-loss", "purge", "lab-lora-adapter")
ANNOTATIONS = Case("annotation-db-loss", "drop", "annotations-db")

SUBSET = [
    *[(PURGE, signal.SIGTERM, Trigger(f"phase.{p}"))
      for p in ("baseline", "inject", "detect", "runbook", "verify", "revert")],
    (ANNOTATIONS, signal.SIGINT, Trigger("step.revert.started", delay_s=0.05)),
    (ADAPTER, signal.SIGTERM, Trigger("step.pull.started")),
    (SOFT, signal.SIGINT, Trigger("fault.injected")),
]


@pytest.mark.parametrize(("case", "signum", "trigger"), SUBSET,
                         ids=[f"{c.label}-{signal.Signals(s).name}-{t.label}"
                              for c, s, t in SUBSET])
def test_signal_leaves_the_target_as_found_with_sealed_evidence(
        lab: Lab, tmp_path: Path, case: Case, signum: int, trigger: Trigger) -> None:
    result = try_signal(lab, case, signum, trigger, tmp_path / "ev")
    assert result.sent, f"the drill ended before {trigger.label}"
    assert result.as_found, result.line()
    assert result.sealed, result.line()
    assert result.exit_code == 130, result.line()
    if trigger.event == "phase.baseline":
        assert result.landed == "baseline"  # before inject: stopped at once, nothing broken
