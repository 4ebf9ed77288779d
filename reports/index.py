"""``index.html``: every drill in the evidence folder, with RTO/RPO trend charts and regressions.

Built from the history store (harness/history.py) only; self-contained like the drill reports.
"""

from __future__ import annotations

from pathlib import Path

from harness.history import DrillRow, Regression, series
from reports.render import _ENV, _atomic_write
from reports.svg import TrendPoint, trend_chart


def _points(rows: list[DrillRow], what: str) -> dict[str, list[TrendPoint]]:
    out: dict[str, list[TrendPoint]] = {}
    for name, drills in series(rows).items():
        out[name] = [TrendPoint(d.drill_id, d.rto_s if what == "RTO" else d.rpo_s, d.verdict,
                                d.rto_target_s if what == "RTO" else d.rpo_target_s)
                     for d in drills]
    return out


def render_index(rows: list[DrillRow], regs: list[Regression], *, tolerance: float,
                 min_delta_s: float) -> str:
    flagged = {r.drill.drill_id: r for r in regs}
    return _ENV.get_template("index.html.j2").render(
        rows=list(reversed(rows)), flagged=flagged, regressions=regs,
        rto_chart=trend_chart(_points(rows, "RTO"), what="RTO"),
        rpo_chart=trend_chart(_points(rows, "RPO"), what="RPO"),
        tolerance=tolerance, min_delta_s=min_delta_s)


def write_index(root: Path, rows: list[DrillRow], regs: list[Regression], *, tolerance: float,
                min_delta_s: float) -> Path:
    path = root / "index.html"
    _atomic_write(path, render_index(rows, regs, tolerance=tolerance, min_delta_s=min_delta_s))
    return path
