"""The published JSON Schema of evidence.json, and validation against it.

The schema lives in ``reports/schema/evidence-v1.json`` (shipped with the package) so an auditor's
own tooling can check a record without drillbook. Renderers validate every document before they
write it: a record that does not match its schema is a bug, never a report.
"""

from __future__ import annotations

import functools
import json
from importlib.resources import files
from typing import Any

from harness.errors import DrillbookError

SCHEMA_FILE = "evidence-v1.json"


class EvidenceInvalid(DrillbookError):
    """evidence.json does not match its published schema."""


@functools.cache
def evidence_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        files("reports").joinpath("schema", SCHEMA_FILE).read_text(encoding="utf-8"))
    return schema


@functools.cache
def _validator() -> Any:
    # built once per process: every rendering validates twice, and building the validator
    # (compiling the schema's references and format checks) costs more than validating
    import jsonschema

    return jsonschema.Draft202012Validator(evidence_schema(),
                                           format_checker=jsonschema.FormatChecker())


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """Every mismatch, as 'path: message'; [] when the document is valid."""
    out = []
    for err in sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        out.append(f"{where}: {err.message}")
    return out


def validate_evidence(doc: dict[str, Any]) -> None:
    errors = schema_errors(doc)
    if errors:
        raise EvidenceInvalid(f"evidence does not match {SCHEMA_FILE}: " + "; ".join(errors[:5]))
