"""Fixtures of the drillbook pytest plugin.

- ``drill_inventory_path`` / ``drill_inventory``: the site inventory from ``--drill-inventory``
  (or the ``drill_inventory`` ini value, or ``$DRILLBOOK_INVENTORY``); a test that needs one
  without it configured errors, it never runs against something else by surprise.
- ``drill_adapters``: the adapters built from that inventory (the same ones drills use).
- ``drill_lab``: the embedded lab, started once per session in a temporary directory.
- ``drill_case``: parametrised by the plugin (one case per scenario x variant x asset fitting the
  inventory) for tests that ask for it: see :func:`harness.pytest_plugin.pytest_generate_tests`.
- ``drill``: runs the drill named by the test's ``drill`` marker (or its ``drill_case``) during
  setup, writes and seals its evidence, and returns the :class:`~harness.model.Evidence`.
  INCONCLUSIVE raises here, so the test *errors*; FAIL is turned into a test failure after the
  test body by the plugin (harness/pytest_plugin.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.context import Adapters
from harness.inventory import Inventory, load_inventory
from harness.model import Evidence, Verdict

if TYPE_CHECKING:
    from lab.stack import Lab

MiB = 1024 * 1024


class DrillInconclusive(Exception):
    """A drill whose checks could not run: reported by pytest as an error, never a pass."""


def configured_inventory(config: pytest.Config) -> Path | None:
    raw = config.getoption("drill_inventory") or config.getini("drill_inventory") or \
        os.environ.get("DRILLBOOK_INVENTORY")
    return Path(str(raw)) if raw else None


@pytest.fixture(scope="session")
def drill_inventory_path(pytestconfig: pytest.Config) -> Path:
    path = configured_inventory(pytestconfig)
    if path is None:
        raise pytest.UsageError("this test runs a drill and needs a site inventory: give "
                                "--drill-inventory PATH (or set drill_inventory in the ini "
                                "file, or $DRILLBOOK_INVENTORY)")
    return path


@pytest.fixture(scope="session")
def drill_inventory(drill_inventory_path: Path) -> Inventory:
    return load_inventory(drill_inventory_path)


@pytest.fixture(scope="session")
def drill_evidence_root(pytestconfig: pytest.Config) -> Path:
    return Path(str(pytestconfig.getoption("drill_evidence"))).resolve()


@pytest.fixture
def drill_adapters(drill_inventory: Inventory, drill_evidence_root: Path) -> Adapters:
    return Adapters(drill_inventory, drill_evidence_root / ".work")


@pytest.fixture(scope="session")
def drill_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    from lab.stack import Lab

    instance = Lab(tmp_path_factory.mktemp("drill-lab"), model_size=4 * MiB)
    try:
        instance.up(progress=lambda m: None)
        yield instance
    finally:
        instance.destroy()


@pytest.fixture
def drill_case(request: pytest.FixtureRequest) -> Any:
    """One generated (scenario, variant, asset): parametrised by the plugin from the inventory."""
    if not hasattr(request, "param"):
        raise pytest.UsageError("drill_case is parametrised from --drill-inventory; none given")
    return request.param


@pytest.fixture
def drill_lease_resolver() -> Any:
    """Where drills take their leases: None is the site's own targets (harness/lease.py).
    Override it (e.g. ``harness.lease.MemoryResolver()``) only for drills of test doubles
    against a site that does not exist."""
    return None


@pytest.fixture
def drill(request: pytest.FixtureRequest, drill_inventory: Inventory,
          drill_evidence_root: Path) -> Evidence:
    from harness.pytest_plugin import run_item_drill

    evidence = run_item_drill(request, drill_inventory, drill_evidence_root)
    if evidence.verdict is Verdict.INCONCLUSIVE:
        raise DrillInconclusive("drill INCONCLUSIVE (a check could not run): "
                                + "; ".join(evidence.reasons))
    return evidence
