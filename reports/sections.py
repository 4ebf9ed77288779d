"""Scenario-specific evidence sections in the HTML report.

Scenarios put their own results in ``Evidence.sections`` (typed sections, harness/model/sections.py).
A section without a renderer of its own is shown generically from its JSON: scalars as a table,
nested objects as nested tables, lists of numbers with a sparkline and their count/min/max, lists
of objects as a table; so an unknown section from a site's scenario always renders. A scenario
that wants a real chart registers a renderer here by section name::

    from reports.sections import register_section_renderer
    register_section_renderer("replication", render_replication)   # (name, Section) -> Markup

Renderers get only the section (never a target), read its typed fields, and must escape what they
print.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from markupsafe import Markup, escape

from harness.model import Section
from reports.svg import sparkline

SectionRenderer = Callable[[str, Section], Markup]

_RENDERERS: dict[str, SectionRenderer] = {}

#: Rows shown for a list of objects before the rest is summarised (the JSON keeps them all).
MAX_ROWS = 60


def register_section_renderer(name: str, renderer: SectionRenderer) -> None:
    _RENDERERS[name] = renderer


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scalar(v: Any) -> Markup:
    if v is None:
        return Markup('<span class="absent">none</span>')
    if isinstance(v, bool):
        return Markup("yes" if v else "no")
    if isinstance(v, float):
        return escape(f"{v:.6g}")
    return escape(str(v))


def render_value(v: Any, depth: int = 0) -> Markup:
    if isinstance(v, dict):
        if not v:
            return Markup('<span class="absent">empty</span>')
        rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{render_value(x, depth + 1)}</td></tr>"
                       for k, x in v.items())
        return Markup(f'<table class="section">{rows}</table>')
    if isinstance(v, list):
        if not v:
            return Markup('<span class="absent">empty list</span>')
        if all(_is_number(x) for x in v):
            nums = [float(x) for x in v]
            stats = escape(f"{len(nums)} values, min {min(nums):.6g}, max {max(nums):.6g}")
            return Markup(f"{sparkline(nums)} <small>{stats}</small>")
        if all(isinstance(x, dict) for x in v):
            keys: list[str] = []
            for item in v:
                keys += [k for k in item if k not in keys]
            head = "".join(f"<th>{escape(k)}</th>" for k in keys)
            body = "".join(
                "<tr>" + "".join(f"<td>{render_value(item.get(k), depth + 1)}</td>" for k in keys)
                + "</tr>" for item in v[:MAX_ROWS])
            more = (f'<p class="absent">{len(v) - MAX_ROWS} more rows in evidence.json</p>'
                    if len(v) > MAX_ROWS else "")
            return Markup(f'<table class="section"><tr>{head}</tr>{body}</table>{more}')
        return Markup(", ".join(str(render_value(x, depth + 1)) for x in v))
    return _scalar(v)


def render_section(name: str, section: Section | Mapping[str, Any]) -> Markup:
    """A section (or a plain key/value detail, such as a baseline fact's) as HTML."""
    if not isinstance(section, Section):
        return render_value(dict(section))
    renderer = _RENDERERS.get(name)
    if renderer is not None:
        try:
            return renderer(name, section)
        except Exception as exc:  # noqa: BLE001 - renderers may be a site's plug-ins
            # a broken chart must not cost the auditor the report: show the data as a table
            note = escape(f"the renderer for section {name!r} failed ({type(exc).__name__}: "
                          f"{exc}); shown as a table")
            return Markup(f'<p class="warn">{note}</p>') + render_value(section.to_json())
    return render_value(section.to_json())
