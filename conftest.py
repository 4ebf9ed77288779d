"""drillbook's own test configuration: the embedded lab as a session fixture, shared by every
integration test, started in a temporary directory on free ports and destroyed at the end."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab.stack import Lab

MiB = 1024 * 1024


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
