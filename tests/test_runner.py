"""The runner's verdict logic with a scripted scenario: no lab, no network."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from harness.errors import Inconclusive, StepFailed, UsageError
from harness.inventory import Inventory, load_inventory
from harness.lease import MemoryResolver
from harness.model import Outcome, RestorePoint, Verdict, utc_now
from harness.runner import DrillRequest, run_drill
from harness.scenario import RunbookStep, Scenario

INVENTORY = """\
version: 1
site: unit
targets:
  store: {kind: s3, endpoint: "http://127.0.0.1:9", access_key: a, secret_key: b, drill_safe: %s}
assets:
  - {id: w, tier: 1, kind: model-weights, store: store, bucket: b, prefix: p/}
objectives:
  tiers: {1: {rto_s: %s, rpo_s: 3600}}
probe: {interval_s: 0.01, detect_timeout_s: 0.2}
"""


def inventory(tmp_path: Path, safe: bool = True, rto: float = 60) -> Inventory:
    p = tmp_path / "inv.yaml"
    p.write_text(INVENTORY % ("true" if safe else "false", rto))
    return load_inventory(p)


class Scripted(Scenario):
    """Each hook does what the class attributes say, and records that it ran."""

    name: ClassVar[str] = "scripted"
    summary: ClassVar[str] = "test double"
    variants: ClassVar[tuple[str, ...]] = ("only",)
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    preflight_error: ClassVar[Exception | None] = None
    detects: ClassVar[bool] = True
    step_error: ClassVar[Exception | None] = None
    verify_fails: ClassVar[bool] = False
    calls: ClassVar[list[str]] = []

    def preflight(self) -> None:
        self.calls.append("preflight")
        if self.preflight_error:
            raise self.preflight_error

    def baseline(self) -> None:
        self.calls.append("baseline")

    def inject(self) -> None:
        self.calls.append("inject")

    def detect(self) -> bool:
        return self.detects

    def runbook(self) -> list[RunbookStep]:
        def locate() -> None:
            self.ctx.findings.restore_point = RestorePoint("test", "x", utc_now(), "here")

        def restore() -> None:
            self.calls.append("restore")
            if self.step_error:
                raise self.step_error
        return [RunbookStep("locate", locate), RunbookStep("restore", restore)]

    def verify(self) -> None:
        self.calls.append("verify")
        if self.verify_fails:
            self.ctx.fail("checksum mismatch")

    def revert(self) -> None:
        self.calls.append("revert")


def make(**attrs: object) -> type[Scripted]:
    return type("S", (Scripted,), {"calls": [], **attrs})


def run(tmp_path: Path, cls: type[Scenario], **kw: object) -> tuple[Verdict, list[str], object]:
    inv = inventory(tmp_path, **kw)  # type: ignore[arg-type]
    result = run_drill(inv, DrillRequest(cls, "only", "w", tmp_path / "ev"), progress=lambda m: None,
                       lease_resolver=MemoryResolver())
    return result.evidence.verdict, list(result.evidence.reasons), result


def test_clean_drill_passes(tmp_path: Path) -> None:
    cls = make()
    verdict, reasons, result = run(tmp_path, cls)
    assert verdict is Verdict.PASS, reasons
    assert cls.calls == ["preflight", "baseline", "inject", "restore", "verify", "revert"]
    ev = result.evidence  # type: ignore[attr-defined]
    assert ev.rto.measured_s is not None and ev.rto.met is True
    assert [s.outcome for s in ev.steps if s.phase.value == "runbook"] == [Outcome.OK, Outcome.OK]


def test_inconclusive_preflight_never_injects(tmp_path: Path) -> None:
    cls = make(preflight_error=Inconclusive("store unreachable"))
    verdict, reasons, _ = run(tmp_path, cls)
    assert verdict is Verdict.INCONCLUSIVE and reasons == ["store unreachable"]
    assert "inject" not in cls.calls and "revert" not in cls.calls


def test_not_drill_safe_refuses_before_preflight(tmp_path: Path) -> None:
    cls = make()
    verdict, reasons, _ = run(tmp_path, cls, safe=False)
    assert verdict is Verdict.INCONCLUSIVE and "drill_safe" in reasons[0]
    assert cls.calls == []


@pytest.mark.parametrize("error", [StepFailed("sha mismatch"), Inconclusive("backup gone"),
                                   RuntimeError("bug in a plug-in")])
def test_failed_runbook_step_fails_and_still_reverts(tmp_path: Path, error: Exception) -> None:
    cls = make(step_error=error)
    verdict, reasons, result = run(tmp_path, cls)
    assert verdict is Verdict.FAIL
    assert "restore" in reasons[0] and str(error) in reasons[0]
    assert cls.calls[-1] == "revert"
    assert result.evidence.rto.measured_s is None  # type: ignore[attr-defined]


def test_verification_failure_is_fail(tmp_path: Path) -> None:
    verdict, reasons, _ = run(tmp_path, make(verify_fails=True))
    assert verdict is Verdict.FAIL and reasons == ["checksum mismatch"]


def test_undetected_fault_fails(tmp_path: Path) -> None:
    verdict, reasons, _ = run(tmp_path, make(detects=False))
    assert verdict is Verdict.FAIL and "not detected" in reasons[0]


def test_rto_over_target_fails(tmp_path: Path) -> None:
    class Slow(Scripted):
        calls: ClassVar[list[str]] = []

        def inject(self) -> None:
            import time
            time.sleep(0.05)
    verdict, reasons, _ = run(tmp_path, Slow, rto=0.01)
    assert verdict is Verdict.FAIL and "RTO" in reasons[0]


def test_ctrl_c_reverts_and_is_never_a_pass(tmp_path: Path) -> None:
    cls = make(step_error=KeyboardInterrupt())
    verdict, reasons, result = run(tmp_path, cls)
    assert verdict is Verdict.INCONCLUSIVE and any("interrupted" in r for r in reasons)
    assert cls.calls[-1] == "revert" and result.interrupted  # type: ignore[attr-defined]


def test_bad_request_is_a_usage_error_before_anything_runs(tmp_path: Path) -> None:
    cls = make()
    inv = inventory(tmp_path)
    with pytest.raises(UsageError, match="no variant"):
        run_drill(inv, DrillRequest(cls, "nope", "w", tmp_path / "ev"))
    with pytest.raises(UsageError, match="not in"):
        run_drill(inv, DrillRequest(cls, "only", "missing", tmp_path / "ev"))
    assert cls.calls == [] and not (tmp_path / "ev").exists()


def test_journal_is_written_as_it_goes(tmp_path: Path) -> None:
    _, _, result = run(tmp_path, make())
    lines = (result.directory / "journal.jsonl").read_text().splitlines()  # type: ignore[attr-defined]
    import json
    kinds = [json.loads(x)["type"] for x in lines]
    assert kinds[0] == "drill" and kinds[-1] == "verdict" and "step" in kinds
