"""``index.html``: every drill in the evidence folder, with RTO/RPO trend charts and regressions.

Built from the history store (harness/history.py) only; self-contained like the drill reports.
The RTO trend is the service RTO (the judged figure); the verified RTO has its own trend beside it.
"""

from __future__ import annotations

from pathlib import Path

from harness.history import DrillRow, Regression, series
from reports.render import _ENV, _atomic_write
from reports.svg import TrendPoint, trend_chart


def _value(d: DrillRow, what: str) -> tuple[float | None, float | None]:
    """(measured, target) of one figure of a drill."""
    if what == "RTO":
        return d.rto_s, d.rto_target_s
    if what == "verified RTO":
        return d.rto_verified_s, d.rto_target_s
    return d.rpo_s, d.rpo_target_s


def _points(rows: list[DrillRow], what: str) -> dict[str, list[TrendPoint]]:
    out: dict[str, list[TrendPoint]] = {}
    for name, drills in series(rows).items():
        out[name] = [TrendPoint(d.drill_id, _value(d, what)[0], d.verdict, _value(d, what)[1])
                     for d in drills]
    return out


def render_index(rows: list[DrillRow], regs: list[Regression], *, tolerance: float,
                 min_delta_s: float) -> str:
    flagged = {r.drill.drill_id: r for r in regs}
    return _ENV.get_template("index.html.j2").render(
        rows=list(reversed(rows)), flagged=flagged, regressions=regs,
        rto_chart=trend_chart(_points(rows, "RTO"), what="RTO"),
        verified_chart=trend_chart(_points(rows, "verified RTO"), what="verified RTO"),
        rpo_chart=trend_chart(_points(rows, "RPO"), what="RPO"),
        tolerance=tolerance, min_delta_s=min_delta_s)


def write_index(root: Path, rows: list[DrillRow], regs: list[Regression], *, tolerance: float,
                min_delta_s: float) -> Path:
    path = root / "index.html"
    _atomic_write(path, render_index(rows, regs, tolerance=tolerance, min_delta_s=min_delta_s))
    return path
