"""The drill history: appended per drill, RTO/RPO per series, regression flags, HTML index."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from test_evidence import doc_of, scripted

from harness import history
from harness.cli import main


def _doc(template: dict[str, Any], n: int, rto: float | None, *, asset: str = "w") -> dict[str, Any]:
    doc = copy.deepcopy(template)
    doc["drill_id"] = f"drill-{asset}-{n}"
    doc["asset"] = asset
    doc["started_utc"] = f"2026-0{n}-01T00:00:00.000000Z"
    doc["rto"] = {"measured_s": rto, "target_s": 600, "met": None if rto is None else True}
    doc["verdict"] = "PASS" if rto is not None else "INCONCLUSIVE"
    return doc


@pytest.fixture
def template(tmp_path: Path) -> dict[str, Any]:
    return doc_of(scripted(tmp_path / "t"))


def record(root: Path, docs: list[dict[str, Any]]) -> list[history.DrillRow]:
    with history.History.open(root) as h:
        for d in docs:
            h.record(d, root / d["drill_id"])
        return h.rows()


def test_each_drill_is_appended_when_its_evidence_is_written(tmp_path: Path) -> None:
    root = tmp_path / "ev"
    scripted(tmp_path, evidence_root=root)
    scripted(tmp_path, evidence_root=root)
    rows = history.load(root)
    assert len(rows) == 2 and all(r.series == "scripted/only @ w" for r in rows)
    assert all(r.rto_s is not None and r.rto_s > 0 for r in rows)
    assert (root / rows[0].directory / "evidence.json").is_file()


def test_a_slower_recovery_beyond_tolerance_is_a_regression(tmp_path: Path,
                                                            template: dict[str, Any]) -> None:
    rows = record(tmp_path, [_doc(template, 1, 100.0), _doc(template, 2, 110.0),
                             _doc(template, 3, None), _doc(template, 4, 150.0),
                             _doc(template, 5, 151.0), _doc(template, 6, 40.0, asset="other"),
                             _doc(template, 7, 45.0, asset="other")])
    regs = history.regressions(rows, tolerance=0.2, min_delta_s=1.0)
    # 110 after 100 is within 20 %; the unmeasured drill is skipped, so 150 is compared with 110;
    # 151 after 150 is noise; the other asset is its own series (45 after 40 is within 20 %)
    assert [(r.drill.drill_id, r.previous.drill_id) for r in regs] == [
        ("drill-w-4", "drill-w-2")]
    assert "150.00 s" in regs[0].message and "110.00 s" in regs[0].message
    assert history.regressions(rows, tolerance=0.5, min_delta_s=1.0) == []
    assert history.regressions(rows, tolerance=0.2, min_delta_s=60.0) == []


def test_history_cli_prints_series_flags_regressions_and_writes_the_index(
        tmp_path: Path, template: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    record(tmp_path, [_doc(template, 1, 10.0), _doc(template, 2, 30.0)])
    assert main(["history", "--evidence-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "scripted/only @ w" in out and "RTO REGRESSION" in out and "regression:" in out
    assert main(["history", "--evidence-dir", str(tmp_path), "--fail-on-regression"]) == 1
    html = (tmp_path / "index.html").read_text()
    assert 'id="rto-trend"' in html and 'class="chart trend"' in html
    # two points each on the service RTO, verified RTO and RPO trends
    assert html.count('class="point"') == 6 and 'id="rto-verified-trend"' in html
    assert 'href="drill-w-2/report.html"' in html and "RTO regression" in html
    assert json.dumps(template["drill_id"]) not in out  # only recorded drills are listed


def test_empty_history_is_said_plainly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", "--evidence-dir", str(tmp_path / "none")]) == 0
    assert "no drills recorded" in capsys.readouterr().out
