"""Charts as inline SVG, drawn from evidence data only (no script, no fonts, no external assets).

- :func:`phase_timeline`: where the RTO went, on a time axis from the fault (t=0): detect, each
  runbook step, verification, with the service-back instant (service RTO), the verified instant
  (verified RTO) and the RTO target marked.
- :func:`trend_chart`: RTO per drill across the history, one line per scenario and asset.
- :func:`sparkline`: a small line for a list of numbers (used for generic section data).

Every string that reaches the SVG goes through :func:`markupsafe.escape`; the functions return
:class:`markupsafe.Markup` so the jinja2 templates (autoescape on) embed them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from harness.model import Evidence, Outcome, Phase

OUTCOME_COLOURS = {"ok": "#2da44e", "failed": "#cf222e", "error": "#9a6700", "skipped": "#8c959f"}
VERDICT_COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "INCONCLUSIVE": "#9a6700"}
PALETTE = ("#0969da", "#8250df", "#bf3989", "#1a7f37", "#bc4c00", "#57606a")


@dataclass(frozen=True)
class Bar:
    label: str
    start_s: float
    end_s: float
    colour: str
    note: str


def _t(text: str) -> str:
    return str(escape(text))


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".") if abs(value) < 1e6 else f"{value:.3g}"


def _tick(value: float, scale: float) -> str:
    digits = 0 if scale >= 50 else 1 if scale >= 5 else 2 if scale >= 0.5 else 3
    return f"{value:.{digits}f}"


@dataclass(frozen=True)
class Instants:
    """Where the RTO figures end, in seconds since the fault (None: not measured)."""

    service: float | None
    verified: float | None


def timeline_bars(ev: Evidence) -> tuple[list[Bar], Instants]:
    """The bars of the phase timeline and the service-back and verified instants, in seconds
    since the fault."""
    events = {t.event: t for t in ev.timeline}
    injected = events.get("fault.injected")
    if injected is None:
        return [], Instants(None, None)
    t0 = injected.utc

    def rel(name: str) -> float | None:
        e = events.get(name)
        return None if e is None else e.since_injection_s

    bars: list[Bar] = []
    detected = rel("fault.detected")
    if detected is not None:
        bars.append(Bar("detect", 0.0, detected, "#6e7781", f"fault detected after {detected:.3f} s"))
    for s in ev.steps:
        if s.phase not in (Phase.RUNBOOK, Phase.VERIFY, Phase.REVERT):
            continue
        start = (s.started - t0).total_seconds()
        end = start + s.duration_s
        colour = OUTCOME_COLOURS.get(s.outcome.value, "#8c959f")
        if s.phase is Phase.REVERT:
            colour = "#afb8c1" if s.outcome is Outcome.OK else colour
        label = s.name if s.phase is Phase.RUNBOOK else f"{s.phase.value}: {s.name}"
        bars.append(Bar(label, start, end, colour, f"{s.phase.value} step {s.name}: "
                        f"{s.outcome.value}, {s.duration_s:.3f} s"))
    completed, verified = rel("recovery.completed"), rel("recovery.verified")
    if completed is not None and verified is not None:
        bars.append(Bar("verify", completed, verified, "#0969da",
                        f"independent verification, {verified - completed:.3f} s"))
    # in time order, revert last: it comes after the RTO clock stopped
    bars.sort(key=lambda b: (b.label.startswith("revert"), b.start_s))
    if ev.rto_verified is None:  # older evidence: its RTO is the verified figure
        return bars, Instants(None, ev.rto.measured_s if verified is None else verified)
    return bars, Instants(ev.rto.measured_s, ev.rto_verified.measured_s)


def _marker(x: float, top: int, bottom: int, colour: str, label: str, title: str, *,
            width: int, right: int, row: int) -> list[str]:
    anchor, dx = ("end", -3) if x > width - right - 140 else ("start", 3)
    return [(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{bottom}" stroke="{colour}" '
            f'stroke-width="2"><title>{_t(title)}</title></line>'),
            (f'<text x="{x + dx:.1f}" y="{top - 10 - row}" font-size="11" fill="{colour}" '
            f'text-anchor="{anchor}">{_t(label)}</text>')]


def phase_timeline(ev: Evidence, width: int = 900) -> Markup:
    """The drill's phases on one time axis, t=0 at the fault, with the instant the service was
    back (service RTO) and the instant verification passed (verified RTO) marked. Empty when no
    fault was injected."""
    bars, at = timeline_bars(ev)
    if not bars:
        return Markup('<p class="absent">No fault was injected, so there is no recovery '
                      'timeline.</p>')
    target = ev.rto.target_s
    end = max(b.end_s for b in bars)
    scale_max = end
    target_on_scale = target <= end * 4
    if target_on_scale:
        scale_max = max(scale_max, float(target))
    scale_max = max(scale_max * 1.05, 1e-3)
    left, right, row, top = 190, 20, 22, 48
    plot = width - left - right
    height = top + row * len(bars) + 44

    def x(sec: float) -> float:
        return left + plot * max(0.0, sec) / scale_max

    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="timeline-chart" '
             f'role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'data-bars="{len(bars)}" aria-label="Recovery timeline, seconds since the fault">'),
             '<title>Recovery timeline: seconds since the fault was injected</title>']
    # axis with five ticks
    axis_y = top + row * len(bars) + 6
    parts.append(f'<line x1="{left}" y1="{axis_y}" x2="{width - right}" y2="{axis_y}" '
                 'stroke="#57606a"/>')
    for i in range(6):
        sec = scale_max * i / 5
        xx = x(sec)
        parts.append(f'<line x1="{xx:.1f}" y1="{top - 4}" x2="{xx:.1f}" y2="{axis_y}" '
                     'stroke="#d0d7de" stroke-width="0.5"/>')
        parts.append(f'<text x="{xx:.1f}" y="{axis_y + 14}" font-size="11" '
                     f'text-anchor="middle">{_tick(sec, scale_max)} s</text>')
    parts.append(f'<text x="{x(0):.1f}" y="{top - 10}" font-size="11" fill="#cf222e">'
                 'fault injected</text>')
    for i, b in enumerate(bars):
        y = top + row * i
        w = max(x(b.end_s) - x(b.start_s), 1.5)
        parts.append(f'<text x="{left - 8}" y="{y + 15}" font-size="12" text-anchor="end">'
                     f'{_t(b.label)}</text>')
        parts.append(f'<rect class="bar" x="{x(b.start_s):.1f}" y="{y + 3}" width="{w:.1f}" '
                     f'height="{row - 6}" fill="{b.colour}"><title>{_t(b.note)}</title></rect>')
    # labels stacked above "fault injected" so instants close together stay readable
    marks = {"width": width, "right": right, "row": 12}
    if at.service is not None:
        parts += _marker(x(at.service), top, axis_y, "#8250df",
                         f"service back ({_tick(at.service, scale_max)} s)",
                         f"service back: service RTO {at.service:.3f} s", **marks)
    if at.verified is not None:
        parts += _marker(x(at.verified), top, axis_y, "#1a7f37",
                         f"verified ({_tick(at.verified, scale_max)} s)",
                         f"recovery verified: verified RTO {at.verified:.3f} s",
                         **{**marks, "row": 24 if at.service is not None else 12})
    if target_on_scale:
        xt = x(float(target))
        parts.append(f'<line x1="{xt:.1f}" y1="{top - 4}" x2="{xt:.1f}" y2="{axis_y}" '
                     'stroke="#cf222e" stroke-dasharray="5,4"><title>RTO target '
                     f'{_num(float(target))} s</title></line>')
        parts.append(f'<text x="{xt - 3:.1f}" y="{axis_y - 4}" font-size="11" '
                     f'text-anchor="end" fill="#cf222e">RTO target</text>')
    else:
        parts.append(f'<text x="{width - right}" y="{axis_y + 28}" font-size="11" '
                     f'text-anchor="end" fill="#57606a">RTO target {_num(float(target))} s '
                     '(off scale)</text>')
    parts.append(f'<text x="{x(0):.1f}" y="{axis_y + 28}" font-size="11" fill="#57606a">seconds '
                 'since the fault</text>')
    parts.append('</svg>')
    return Markup("".join(parts))


@dataclass(frozen=True)
class TrendPoint:
    label: str
    value: float | None
    verdict: str
    target: float | None


def trend_chart(series: Mapping[str, Sequence[TrendPoint]], *, what: str = "RTO",
                width: int = 900, height: int = 280) -> Markup:
    """One line per series (scenario / asset), x = drill order, y = seconds. Unmeasured values
    are drawn as gaps, never as zero."""
    values = [p.value for pts in series.values() for p in pts if p.value is not None]
    targets = [p.target for pts in series.values() for p in pts if p.target is not None]
    n = max((len(pts) for pts in series.values()), default=0)
    if not values or n == 0:
        return Markup(f'<p class="absent">No measured {_t(what)} yet.</p>')
    y_max = max(values) * 1.15 or 1.0  # all zero (an RPO of 0 s): still a visible axis
    if targets and min(targets) <= max(values) * 4:
        y_max = max(y_max, min(targets) * 1.05)
    left, right, top, bottom = 60, 180, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - min(v, y_max) / y_max)

    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart trend" role="img" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
             f'data-series="{len(series)}" aria-label="{_t(what)} trend across drills">'),
             f'<title>{_t(what)} per drill (seconds)</title>',
             (f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" '
             'stroke="#57606a"/>'),
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#57606a"/>']
    for i in range(5):
        v = y_max * i / 4
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" font-size="11" '
                     f'text-anchor="end">{_num(v)} s</text>')
    for k, (name, pts) in enumerate(sorted(series.items())):
        colour = PALETTE[k % len(PALETTE)]
        segment: list[str] = []
        segments: list[list[str]] = []
        for i, p in enumerate(pts):
            if p.value is None:
                if segment:
                    segments.append(segment)
                segment = []
                continue
            segment.append(f"{x(i):.1f},{y(p.value):.1f}")
        if segment:
            segments.append(segment)
        for seg in segments:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                         f'points="{" ".join(seg)}"/>')
        for i, p in enumerate(pts):
            if p.value is None:
                continue
            parts.append(f'<circle class="point" cx="{x(i):.1f}" cy="{y(p.value):.1f}" r="4" '
                         f'fill="{VERDICT_COLOURS.get(p.verdict, "#57606a")}" stroke="{colour}">'
                         f'<title>{_t(p.label)}: {_t(what)} {p.value:.3f} s ({_t(p.verdict)})'
                         '</title></circle>')
        target = next((p.target for p in reversed(pts) if p.target is not None), None)
        if target is not None and target <= y_max:
            parts.append(f'<line x1="{left}" y1="{y(target):.1f}" x2="{left + plot_w}" '
                         f'y2="{y(target):.1f}" stroke="{colour}" stroke-dasharray="5,4">'
                         f'<title>{_t(name)}: target {_num(target)} s</title></line>')
        ly = top + 14 + 16 * k
        parts.append(f'<rect x="{left + plot_w + 12}" y="{ly - 9}" width="10" height="10" '
                     f'fill="{colour}"/><text x="{left + plot_w + 26}" y="{ly}" '
                     f'font-size="11">{_t(name)}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" font-size="11" '
                 'text-anchor="middle" fill="#57606a">drills, oldest to newest (dashed: '
                 'target)</text>')
    parts.append('</svg>')
    return Markup("".join(parts))


def sparkline(values: Sequence[float], width: int = 240, height: int = 40) -> Markup:
    """A small line for a numeric list in a generic evidence section."""
    if len(values) < 2:
        return Markup("")
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    pts = " ".join(
        f"{2 + (width - 4) * i / (len(values) - 1):.1f},"
        f"{2 + (height - 4) * (1 - (v - lo) / span):.1f}" for i, v in enumerate(values))
    return Markup(f'<svg xmlns="http://www.w3.org/2000/svg" class="chart spark" role="img" '
                  f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
                  f'<title>{len(values)} values, min {lo:g}, max {hi:g}</title>'
                  f'<polyline fill="none" stroke="#0969da" stroke-width="1.5" points="{pts}"/>'
                  '</svg>')
