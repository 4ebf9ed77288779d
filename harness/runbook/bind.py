"""A runbook step bound to the drill it works on.

Step factories return ``RunbookStep(name, BoundStep(ctx, state, fn).run, summary)``: the step's
function gets the context and the typed per-drill state, and an override (``run_drill(...,
overrides=...)``, which receives the original step's ``run``) reaches that state as
``original.__self__.state`` without the scenario exposing it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from harness.scenario import RunbookStep

if TYPE_CHECKING:
    from harness.context import DrillContext

S = TypeVar("S")


@dataclass(frozen=True)
class BoundStep(Generic[S]):
    ctx: DrillContext
    state: S
    fn: Callable[[DrillContext, S], None]

    def run(self) -> None:
        self.fn(self.ctx, self.state)


def bound(name: str, fn: Callable[[DrillContext, S], None], ctx: DrillContext, state: S,
          summary: str = "") -> RunbookStep:
    """The step ``name`` running ``fn(ctx, state)``."""
    return RunbookStep(name, BoundStep(ctx, state, fn).run, summary)
