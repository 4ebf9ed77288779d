"""What the lab-free scenario tests share: the lab-shaped inventory (no lab), a drill run on
handed-in fakes and a manual clock, and a sabotage helper that reads a step's state."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from inventory_samples import dump, lab_like

from harness import provenance
from harness.context import DrillContext
from harness.inventory import Inventory, load_inventory
from harness.journal import ManualClock
from harness.lease import MemoryResolver
from harness.model import Evidence
from harness.runner import DrillRequest, StepOverride, run_drill
from harness.scenario import Scenario

START = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)


_fingerprint = functools.cache(provenance.environment_fingerprint)
_git_state = functools.cache(provenance.git_state)


@pytest.fixture(autouse=True)
def provenance_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The evidence's machine fingerprint and the runbook's git state, measured once per test
    session instead of once per drill (each lists every installed package or runs git, which
    would make a millisecond drill take seconds). Import this fixture into a test module."""
    monkeypatch.setattr(provenance, "environment_fingerprint", _fingerprint)
    monkeypatch.setattr(provenance, "git_state", _git_state)


def unit_inventory(root: Path, targets: Mapping[str, Mapping[str, Any]] | None = None,
                   **changes: Any) -> Inventory:
    """The lab's inventory shape, every file it names under ``root``; ``targets`` changes fields
    of targets, ``changes`` replace top-level sections."""
    doc = lab_like(root)
    doc.update(changes)
    for name, fields in (targets or {}).items():
        doc["targets"][name].update(fields)
    for a in doc["assets"]:
        for k in ("golden", "fallback_golden"):
            if a.get(k) and not Path(a[k]).is_absolute():
                a[k] = str(root / a[k])
    path = root / "inventory.yaml"
    path.write_bytes(dump(doc))
    return load_inventory(path)


def drill(inventory: Inventory, cls: type[Scenario], variant: str, asset: str,
          adapters: Mapping[str, object], clock: ManualClock, root: Path,
          overrides: Mapping[str, StepOverride] | None = None) -> Evidence:
    result = run_drill(inventory, DrillRequest(cls, variant, asset, root / "evidence"),
                       overrides=overrides, clock=clock, progress=lambda m: None,
                       lease_resolver=MemoryResolver(), adapters=adapters)
    return result.evidence


def state_of(original: Callable[[], None]) -> Any:
    """The per-drill state a library step was built with (its ``functools.partial`` args)."""
    return original.args[1]  # type: ignore[attr-defined]


def raises(error: Exception) -> StepOverride:
    """An override whose step raises ``error`` (a bug, a lost connection) instead of running."""
    def run(ctx: DrillContext, original: Callable[[], None]) -> None:
        raise error
    return run


def skip(ctx: DrillContext, original: Callable[[], None]) -> None:
    """Sabotage: the operator never does this step (and says nothing)."""


def step_names(ev: Evidence) -> list[str]:
    return [s.name for s in ev.steps if s.phase.value == "runbook"]
