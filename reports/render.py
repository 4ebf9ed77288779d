"""Write a drill's evidence set from its :class:`~harness.model.Evidence`.

    evidence.json   the record (validated against reports/schema/evidence-v1.json)
    report.html     self-contained report: ten-second summary, phase timeline (inline SVG), all
                    auditor fields, generic sections; no script, no external asset
    junit.xml       one test case per objective (reports/junit.py)
    summary.md      for a CI step summary or a pull-request comment (reports/markdown.py)
    SHA256SUMS      over every file of the folder, and SHA256SUMS.sig when a key is given

Every renderer reads the same JSON document (evidence.json plus the findings.yaml sidecar), so
they cannot disagree, and ``drillbook report DIR`` re-renders all of them from the folder alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from harness.errors import UsageError
from harness.model import Evidence
from reports.findings import SIDECAR, apply_sidecar, load_sidecar
from reports.junit import render_junit
from reports.markdown import render_markdown
from reports.objectives import objective_results
from reports.sections import render_section
from reports.svg import phase_timeline
from reports.validate import validate_evidence

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("reports", "templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

EVIDENCE_FILES = ("evidence.json", "report.html", "junit.xml", "summary.md")


def _seconds(value: float | None) -> str:
    if value is None:
        return "not measured"
    if value < 120:
        return f"{value:.2f} s"
    if value < 7200:
        return f"{value / 60:.1f} min ({value:.0f} s)"
    return f"{value / 3600:.1f} h ({value:.0f} s)"


_ENV.filters["seconds"] = _seconds
_ENV.globals["render_section"] = render_section


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def render_html(doc: dict[str, Any]) -> str:
    return _ENV.get_template("report.html.j2").render(
        e=doc, timeline_svg=phase_timeline(doc), objectives=objective_results(doc),
        team_findings=any(f.get("source") == "team" for f in doc.get("findings", [])))


@dataclass(frozen=True)
class Written:
    directory: Path
    paths: dict[str, Path]
    signed: bool

    def __getitem__(self, key: str) -> Path:  # keeps `write_evidence(...)["html"]` working
        return self.paths[key]


def _render_all(doc: dict[str, Any], directory: Path) -> dict[str, Path]:
    shown = apply_sidecar(doc, load_sidecar(directory))
    validate_evidence(shown)
    paths = {"html": directory / "report.html", "junit": directory / "junit.xml",
             "markdown": directory / "summary.md", "json": directory / "evidence.json"}
    _atomic_write(paths["html"], render_html(shown))
    _atomic_write(paths["junit"], render_junit(shown))
    _atomic_write(paths["markdown"], render_markdown(shown))
    return paths


def write_evidence(evidence: Evidence, directory: Path, *, signing_key: Path | None = None,
                   history: bool = True) -> Written:
    """Write the whole evidence set into the drill's folder, append the drill to the history
    store beside the folder, and seal the folder (SHA256SUMS, signed when a key is given)."""
    from harness import signing
    from harness.history import History

    doc = evidence.to_json()
    validate_evidence(doc)
    _atomic_write(directory / "evidence.json", json.dumps(doc, indent=2) + "\n")
    paths = _render_all(doc, directory)
    if history:
        with History.open(directory.parent) as store:
            store.record(doc, directory)
    signed = signing.seal(directory, signing_key)
    return Written(directory, paths, signed)


def rerender(directory: Path, *, signing_key: Path | None = None,
             drop_signature: bool = False) -> Written:
    """Render every report again from evidence.json and the findings sidecar, then re-seal.

    A signed folder is only re-sealed with a key: re-rendering changes files, and quietly
    replacing a signature with nothing would look like tampering to the next reader."""
    from harness import signing

    source = directory / "evidence.json"
    if not source.is_file():
        raise UsageError(f"{directory} has no evidence.json: not a drill folder")
    doc = json.loads(source.read_text(encoding="utf-8"))
    if (directory / signing.SIGNATURE).exists() and signing_key is None and not drop_signature:
        raise UsageError(f"{directory} is signed; re-rendering changes its files. Give the signing "
                         f"key (--signing-key or $DRILLBOOK_SIGNING_KEY) to sign again, or "
                         f"--unsigned to drop the signature")
    paths = _render_all(doc, directory)
    signed = signing.seal(directory, signing_key)
    return Written(directory, paths, signed)


__all__ = ["EVIDENCE_FILES", "SIDECAR", "Written", "render_html", "rerender", "write_evidence"]
