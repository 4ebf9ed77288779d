"""drillbook's own test configuration: the embedded lab as a session fixture, shared by every
integration test, started in a temporary directory on free ports and destroyed at the end; the
tests' temporary files on tmpfs; the hypothesis profiles."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from lab.stack import Lab

MiB = 1024 * 1024

# pytest-in-pytest: tests/test_pytest_gate.py runs the drillbook plugin in an inner session
pytest_plugins = ["pytester"]

# Property-based tests: "dev" (the default) runs each property on the same 100 inputs every time,
# so a failure reproduces and the lab-free suite stays under a minute; "nightly" (pytest
# --hypothesis-profile=nightly, or HYPOTHESIS_PROFILE=nightly) runs twenty times as many, new
# ones each run, and prints the blob that replays a failure. Neither writes an example database.
settings.register_profile("dev", max_examples=100, derandomize=True, database=None)
settings.register_profile("nightly", max_examples=2000, derandomize=False, database=None,
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

SHM = Path("/dev/shm")
_TMPFS_KEY = pytest.StashKey[Path]()


def pytest_configure(config: pytest.Config) -> None:
    """Temporary files on tmpfs, unless --basetemp says where: every drill's journal fsyncs each
    line (harness/journal.py), which on a disk costs a scripted drill more than the drill. An
    xdist worker is given its own folder under the controller's (config.workerinput)."""
    if (config.option.basetemp is None and not hasattr(config, "workerinput")
            and SHM.is_dir() and os.access(SHM, os.W_OK)):
        base = Path(tempfile.mkdtemp(prefix="drillbook-tests-", dir=SHM))
        config.option.basetemp = str(base)
        config.stash[_TMPFS_KEY] = base


def pytest_unconfigure(config: pytest.Config) -> None:
    base = config.stash.get(_TMPFS_KEY, None)
    if base is not None:  # memory, not disk: nothing may be left behind (--basetemp keeps it)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    # on disk, not under the tests' tmpfs folder: Ceph's OSD opens its block file with O_DIRECT
    root = Path(tempfile.mkdtemp(prefix="drillbook-lab-"))
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
