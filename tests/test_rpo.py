"""RPO without a lab: never negative, never clamped past the clock tolerance, and for continuous
protection the window of writes actually lost; the evidence says which definition applied."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest

from harness.inventory import load_inventory
from harness.lease import MemoryResolver
from harness.model import (
    RESTORE_POINT_CLOCK_TOLERANCE_S,
    Event,
    Objective,
    Phase,
    RestorePoint,
    RpoDefinition,
    RpoError,
    Verdict,
    compute_rpo,
    measure_rpo,
)
from harness.runner import DrillRequest, run_drill
from harness.scenario import RunbookStep, Scenario
from reports.render import write_evidence

T0 = datetime(2026, 11, 25, 6, 0, 0, tzinfo=UTC)
EVENTS = [Event(0, "fault.injected", Phase.INJECT, T0, 5.0)]


def point(created: datetime, **kw: object) -> RestorePoint:
    return RestorePoint("restic-snapshot", "abc", created, "repo", **kw)  # type: ignore[arg-type]


def test_a_restore_point_dated_after_the_fault_is_an_error_with_its_reason() -> None:
    future = point(T0 + timedelta(seconds=591))
    with pytest.raises(RpoError, match=r"591\.000 s after the fault.*clock tolerance"):
        compute_rpo(EVENTS, future)
    m = measure_rpo(EVENTS, future)
    assert m.seconds is None and m.error is not None and "abc" in m.error
    o = Objective.of_rpo(m, 300)
    assert o.measured_s is None and o.met is None and o.error == m.error


def test_within_the_clock_tolerance_the_rpo_is_zero_and_says_why() -> None:
    skewed = point(T0 + timedelta(seconds=RESTORE_POINT_CLOCK_TOLERANCE_S / 2))
    m = measure_rpo(EVENTS, skewed)
    assert m.seconds == 0.0 and m.error is None
    assert m.note is not None and "within the clock tolerance" in m.note


def test_point_in_time_copies_measure_their_age() -> None:
    m = measure_rpo(EVENTS, point(T0 - timedelta(minutes=30)))
    assert m.seconds == pytest.approx(1800.0)
    assert m.definition is RpoDefinition.RESTORE_POINT_AGE


def test_continuous_protection_loses_only_the_writes_not_brought_back() -> None:
    # the adapter was written a day ago and nothing since: restoring its current version loses
    # nothing, however old it is
    old = RestorePoint("bucket-version", "v1", T0 - timedelta(days=1), "s3://b/p/",
                       continuous=True)
    m = measure_rpo(EVENTS, old)
    assert m.seconds == 0.0 and m.definition is RpoDefinition.WRITES_LOST
    # two newer versions were lost, the oldest written 40 s before the fault
    lossy = RestorePoint("bucket-version", "v1", T0 - timedelta(days=1), "s3://b/p/",
                         newer_versions_lost=2, continuous=True,
                         oldest_lost_write=T0 - timedelta(seconds=40))
    assert measure_rpo(EVENTS, lossy).seconds == pytest.approx(40.0)


INVENTORY = """\
version: 1
site: unit
targets:
  store: {kind: s3, endpoint: "http://127.0.0.1:9", access_key: a, secret_key: b, drill_safe: true}
assets:
  - {id: w, tier: 1, kind: model-weights, store: store, bucket: b, prefix: p/}
objectives:
  tiers: {1: {rto_s: 60, rpo_s: 300}}
probe: {interval_s: 0.01, detect_timeout_s: 0.2}
"""


class Restores(Scenario):
    """Restores whatever restore point the class names (relative to now), cleanly."""

    name: ClassVar[str] = "restores"
    summary: ClassVar[str] = "test double"
    variants: ClassVar[tuple[str, ...]] = ("only",)
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    blast_radius: ClassVar[str] = "nothing real"
    offset_s: ClassVar[float] = -60.0
    continuous: ClassVar[bool] = False

    def preflight(self) -> None:
        pass

    def baseline(self) -> None:
        pass

    def inject(self) -> None:
        pass

    def detect(self) -> bool:
        return True

    def runbook(self) -> list[RunbookStep]:
        def locate() -> None:
            created = self.ctx.clock.utc() + timedelta(seconds=self.offset_s)
            self.ctx.findings.restore_point = RestorePoint(
                "bucket-version" if self.continuous else "restic-snapshot", "p", created,
                "here", continuous=self.continuous)
        return [RunbookStep("locate", locate)]

    def verify(self) -> None:
        self.ctx.findings.smoke.update({"passed": True, "summary": "ok"})

    def revert(self) -> None:
        pass


def run(tmp_path: Path, **attrs: object) -> dict[str, object]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    p = tmp_path / "inv.yaml"
    p.write_text(INVENTORY)
    cls = type("R", (Restores,), attrs)
    result = run_drill(load_inventory(p), DrillRequest(cls, "only", "w", tmp_path / "ev"),
                       progress=lambda m: None, lease_resolver=MemoryResolver())
    write_evidence(result.evidence, result.directory, history=False)  # schema-validated
    doc: dict[str, object] = json.loads((result.directory / "evidence.json").read_text())
    return doc


def test_a_drill_that_restored_a_future_dated_point_fails_never_passes(tmp_path: Path) -> None:
    doc = run(tmp_path, offset_s=600.0)
    assert doc["verdict"] == "FAIL"
    rpo = doc["rpo"]
    assert isinstance(rpo, dict) and rpo["measured_s"] is None and "after the fault" in rpo["error"]
    assert any("RPO not measurable" in str(r) for r in doc["reasons"])  # type: ignore[union-attr]


def test_an_old_continuous_point_with_nothing_lost_passes_with_rpo_zero(tmp_path: Path) -> None:
    doc = run(tmp_path, offset_s=-3 * 3600.0, continuous=True)
    assert doc["verdict"] == "PASS", doc["reasons"]
    assert doc["rpo"] == {"measured_s": 0.0, "target_s": 300, "met": True,
                          "definition": "writes-lost"}
    rp = doc["restore_point"]
    assert isinstance(rp, dict) and rp["rpo_definition"] == "writes-lost"
    # the same point as a snapshot is three hours old: over the 300 s target
    assert run(tmp_path / "snap", offset_s=-3 * 3600.0)["verdict"] == Verdict.FAIL.value
