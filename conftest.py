"""drillbook's own test configuration: the embedded lab as a session fixture, shared by every
integration test, started in a temporary directory on free ports and destroyed at the end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.stack import Lab

MiB = 1024 * 1024

# pytest-in-pytest: tests/test_pytest_gate.py runs the drillbook plugin in an inner session
pytest_plugins = ["pytester"]


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("lab")
    instance = Lab(root, model_size=4 * MiB)
    t0 = time.monotonic()
    try:
        instance.up(progress=lambda m: print(m))
        print(f"lab up in {time.monotonic() - t0:.1f} s")
        yield instance
    finally:
        instance.destroy()


@pytest.fixture
def evidence_root(tmp_path: Path) -> Path:
    return tmp_path / "evidence"


# -- the drillbook pytest plugin (harness/pytest_plugin.py, loaded through its pytest11 entry
# point) runs drills as tests; in this repo they run against the session's lab unless
# --drill-inventory names another site.

@pytest.fixture(scope="session")
def drill_lab(lab: Lab) -> Lab:
    return lab


@pytest.fixture(scope="session")
def drill_inventory_path(pytestconfig: pytest.Config, request: pytest.FixtureRequest) -> Path:
    from harness.pytest_fixtures import configured_inventory

    given = configured_inventory(pytestconfig)
    return given if given is not None else request.getfixturevalue("drill_lab").inventory_path


@pytest.fixture(scope="session")
def drill_evidence_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("drill-evidence")
