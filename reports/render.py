"""Write a drill's evidence set from its :class:`~harness.model.Evidence`.

    evidence.json   the record (validated against reports/schema/evidence-v1.json)
    report.html     self-contained report: ten-second summary, phase timeline (inline SVG), all
                    auditor fields, generic sections; no script, no external asset
    junit.xml       one test case per objective (reports/junit.py)
    summary.md      for a CI step summary or a pull-request comment (reports/markdown.py)
    SHA256SUMS      over every file of the folder, and SHA256SUMS.sig when a key is given

Every renderer reads the same :class:`~harness.model.Evidence` (plus the findings.yaml sidecar
merged in), never a dict, so they cannot disagree; ``drillbook report DIR`` reads evidence.json
back into the model (``Evidence.from_json``, exact) and re-renders all of them from the folder
alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2

from harness.errors import UsageError
from harness.model import EVIDENCE_FORMAT, Evidence, LoadSection, iso
from reports.findings import SIDECAR, load_sidecar, with_sidecar
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


def _iso(value: datetime | None) -> str | None:
    return None if value is None else iso(value)


_ENV.filters["seconds"] = _seconds
_ENV.filters["iso"] = _iso
_ENV.tests["load_section"] = lambda v: isinstance(v, LoadSection)
_ENV.globals["render_section"] = render_section
_ENV.globals["evidence_format"] = EVIDENCE_FORMAT


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def render_html(ev: Evidence) -> str:
    if ev.audit is None:
        raise UsageError(f"evidence {ev.drill_id} has no auditor's record: not a drill's evidence")
    return _ENV.get_template("report.html.j2").render(
        e=ev, timeline_svg=phase_timeline(ev), objectives=objective_results(ev),
        team_findings=any(f.source == "team" for f in ev.audit.findings))


@dataclass(frozen=True)
class Written:
    directory: Path
    paths: dict[str, Path]
    signed: bool

    def __getitem__(self, key: str) -> Path:  # keeps `write_evidence(...)["html"]` working
        return self.paths[key]


def _render_all(ev: Evidence, directory: Path) -> dict[str, Path]:
    shown = with_sidecar(ev, load_sidecar(directory))
    validate_evidence(shown.to_json())
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
    paths = _render_all(evidence, directory)
    if history:
        with History.open(directory.parent) as store:
            store.record(evidence, directory)
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
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise UsageError(f"{source} is not JSON ({exc}): not a drill's evidence") from exc
    evidence = Evidence.from_json(doc)
    if (directory / signing.SIGNATURE).exists() and signing_key is None and not drop_signature:
        raise UsageError(f"{directory} is signed; re-rendering changes its files. Give the signing "
                         f"key (--signing-key or $DRILLBOOK_SIGNING_KEY) to sign again, or "
                         f"--unsigned to drop the signature")
    paths = _render_all(evidence, directory)
    signed = signing.seal(directory, signing_key)
    return Written(directory, paths, signed)


__all__ = ["EVIDENCE_FILES", "SIDECAR", "Written", "render_html", "rerender", "write_evidence"]
