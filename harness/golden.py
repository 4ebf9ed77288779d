"""Golden inputs and outputs: what a smoke test feeds a served model and what it must answer.

A golden file is JSON ``{"inputs": [[...], ...], "outputs": [[...], ...]}``; ``outputs`` may be
absent when the reference is the endpoint's own answer recorded before the fault (an asset
whose exact outputs nobody wrote down). Comparison is exact: a restored model must answer
bit-identically, so one flipped weight shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.errors import Inconclusive

Rows = list[list[float]]


@dataclass(frozen=True)
class GoldenMatch:
    """How many rows of an answer were identical to the reference."""

    same: int
    total: int

    @property
    def ok(self) -> bool:
        return self.total > 0 and self.same == self.total

    @property
    def differ(self) -> int:
        return self.total - self.same


@dataclass(frozen=True)
class Golden:
    inputs: Rows
    outputs: Rows | None = None

    @classmethod
    def load(cls, path: Path, *, require_outputs: bool = False) -> Golden:
        """Read a golden file; Inconclusive (naming the file) when it is unreadable or malformed,
        or lacks outputs and ``require_outputs`` says they are the reference."""
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise Inconclusive(f"golden file {path} cannot be read: {exc}") from exc
        if not isinstance(doc, dict):
            raise Inconclusive(f"golden file {path} is not a JSON object")
        inputs = _rows(doc.get("inputs"), path, "inputs")
        if inputs is None or not inputs:
            raise Inconclusive(f"golden file {path} has no inputs")
        outputs = _rows(doc.get("outputs"), path, "outputs")
        if outputs is None and require_outputs:
            raise Inconclusive(f"golden file {path} has no outputs to compare with")
        return cls(inputs, outputs)

    def expected(self) -> Rows:
        """The file's outputs, for checks that have no recorded answer of their own."""
        if self.outputs is None:
            raise Inconclusive("the golden file has no outputs to compare with")
        return self.outputs

    def compare(self, got: Rows, reference: Rows | None = None) -> GoldenMatch:
        """``got`` row by row against ``reference`` (default: the file's outputs)."""
        want = self.expected() if reference is None else reference
        same = sum(1 for x, y in zip(got, want, strict=False) if x == y)
        return GoldenMatch(same, len(want))


def _rows(value: object, path: Path, field: str) -> Rows | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(
            isinstance(row, list) and all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                          for x in row) for row in value):
        raise Inconclusive(f"golden file {path}: {field} is not a list of rows of numbers")
    return [[float(x) for x in row] for row in value]
