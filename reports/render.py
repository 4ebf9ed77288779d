"""Write a drill's evidence: ``evidence.json`` and a self-contained ``report.html``.

Both come from the same :class:`~harness.model.Evidence` object (the HTML from its JSON form), so
they cannot disagree. The HTML has no external assets and is rendered with autoescape on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jinja2

from harness.model import Evidence

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("reports", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _seconds(value: float | None) -> str:
    if value is None:
        return "not measured"
    if value < 120:
        return f"{value:.2f} s"
    if value < 7200:
        return f"{value / 60:.1f} min ({value:.0f} s)"
    return f"{value / 3600:.1f} h ({value:.0f} s)"


_ENV.filters["seconds"] = _seconds


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def render_html(doc: dict[str, Any]) -> str:
    return _ENV.get_template("report.html.j2").render(e=doc)


def write_evidence(evidence: Evidence, directory: Path) -> dict[str, Path]:
    """Write evidence.json and report.html into the drill's folder; returns their paths."""
    doc = evidence.to_json()
    paths = {"json": directory / "evidence.json", "html": directory / "report.html"}
    _atomic_write(paths["json"], json.dumps(doc, indent=2) + "\n")
    _atomic_write(paths["html"], render_html(doc))
    return paths


def rerender(directory: Path) -> Path:
    """Render report.html again from an existing evidence.json."""
    doc = json.loads((directory / "evidence.json").read_text(encoding="utf-8"))
    out = directory / "report.html"
    _atomic_write(out, render_html(doc))
    return out
