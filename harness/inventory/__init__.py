"""The site inventory: what exists, which tier it is, where its backups are, what must hold.

One YAML file describes a site. :func:`load_inventory` validates all of it before anything runs
and raises :class:`~harness.errors.InventoryError` naming the file, the line and the field, so a
typo never starts half a drill, and no file, however malformed or hostile, gets anything else out
of it: no traceback, no hang, no unbounded memory (see :mod:`harness.inventory.source`). Secrets
may be given literally (the lab's own inventory does) or through ``*_env`` keys naming
environment variables (what a real site should do); either way they are held in :class:`Secret`,
whose repr never shows the value.

    source.py   bytes -> text -> YAML nodes -> data, bounded, with a line per field
    fields.py   typed, located reads of one field (strings, numbers, dates, names, secrets)
    targets.py  the targets: section and the names targets give of one another
    assets.py   the assets: section and the safety-bucket rule
    build.py    the top level, objectives, guards, probe, slo, load, exercise, evidence
    model.py    the typed records
    schema.py   the published JSON Schema (harness/schema/inventory-v1.json), checked as well

Importers use this package: ``from harness.inventory import Inventory, load_inventory, Asset``.
"""

from __future__ import annotations

from pathlib import Path

from harness.inventory.build import build
from harness.inventory.fields import Reader
from harness.inventory.model import (
    ASSET_KINDS,
    DB_ASSET_KINDS,
    DB_TARGET_KINDS,
    TARGET_KINDS,
    Asset,
    EvidenceSettings,
    ExerciseSpec,
    InferenceTarget,
    Inventory,
    JobTarget,
    LoadBalancerTarget,
    MlflowTarget,
    NodeTarget,
    OrchestratorTarget,
    PostgresTarget,
    ResticTarget,
    RgwAdminTarget,
    S3Target,
    Secret,
    Target,
    Targets,
)
from harness.inventory.schema import check as check_schema
from harness.inventory.source import parse_file

__all__ = [
    "ASSET_KINDS", "DB_ASSET_KINDS", "DB_TARGET_KINDS", "TARGET_KINDS", "Asset",
    "EvidenceSettings", "ExerciseSpec", "InferenceTarget", "Inventory", "JobTarget",
    "LoadBalancerTarget", "MlflowTarget", "NodeTarget", "OrchestratorTarget", "PostgresTarget",
    "ResticTarget", "RgwAdminTarget", "S3Target", "Secret", "Target", "Targets",
    "load_inventory",
]


def load_inventory(path: Path | str) -> Inventory:
    """Parse and validate an inventory file. Raises InventoryError; never returns half an
    inventory."""
    file = Path(path)
    parsed = parse_file(file)
    reader = Reader(file, parsed.lines)
    inventory = build(file, parsed.data, reader)
    check_schema(parsed.data, reader)
    return inventory
