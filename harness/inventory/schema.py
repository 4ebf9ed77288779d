"""The published JSON Schema of the inventory (``harness/schema/inventory-v1.json``).

Editors can check an inventory with it (yaml-language-server: ``# yaml-language-server:
$schema=<path to inventory-v1.json>``), and :func:`check` validates every loaded inventory
against it after the loader's own checks, so the schema cannot drift from the code: a field the
code accepts and the schema does not fails the repository's tests. The YAML is read as JSON:
mapping keys as strings, dates as ``YYYY-MM-DD``, null values as absent.
"""

from __future__ import annotations

import json
from datetime import date
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

from harness.inventory.fields import Reader

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schema" / "inventory-v1.json"


@cache
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return Draft202012Validator(schema, format_checker=FormatChecker())


def as_json(value: Any) -> Any:
    """The parsed YAML as the JSON document the schema describes."""
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    return value


Violation = tuple[tuple[str | int, ...], str]


@lru_cache(maxsize=32)
def _violations(document: str) -> tuple[Violation, ...]:
    """Every violation of one document (as canonical JSON text). Cached: a process loads the
    same inventory again and again (the CLI's checks, a pytest session's drills), and the
    schema walk costs more than the rest of the load."""
    return tuple((tuple(e.absolute_path), e.message)
                 for e in validator().iter_errors(json.loads(document)))


def check(data: Any, r: Reader) -> None:
    """Raise the first schema violation (in document order) as a located InventoryError."""
    document = as_json(data)
    try:
        errors = _violations(json.dumps(document, sort_keys=True, allow_nan=False))
    except (TypeError, ValueError):  # not plain JSON (a YAML set, a NaN): validate it as it is
        errors = tuple((tuple(e.absolute_path), e.message)
                       for e in validator().iter_errors(document))
    if not errors:
        return
    path, message = min(errors, key=lambda e: (r.line(e[0]), len(e[0])))
    raise r.fail(path, f"does not match the inventory schema: {message}")
