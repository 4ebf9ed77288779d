"""Hook specifications the drillbook pytest plugin adds (registered in ``pytest_addhooks``).

A site's conftest.py or plugin implements them to act on each drill's evidence, e.g. to upload
the evidence folder or post the summary to a chat channel.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from harness.model import Evidence


@pytest.hookspec
def pytest_drill_evidence(item: pytest.Item, evidence: Evidence, directory: Path) -> None:
    """Called once a drill run by the ``drill`` fixture has written (and sealed) its evidence,
    before its verdict is turned into a test outcome."""
