"""Reading the drill's own journal from runbook steps: when the fault was injected, and how long
after it something happened. Steps measure against these, never against a time they keep."""

from __future__ import annotations

from datetime import datetime

from harness.context import DrillContext
from harness.errors import Inconclusive
from harness.model import event_by_name


def injected_at(ctx: DrillContext, why: str = "nothing to measure against") -> datetime:
    """The UTC time of ``fault.injected``; Inconclusive (saying ``why``) when there is none."""
    ev = event_by_name(ctx.journal.events, "fault.injected")
    if ev is None:
        raise Inconclusive(f"no fault.injected event: {why}")
    return ev.utc


def since_injected(ctx: DrillContext, event: str) -> float | None:
    """Seconds from the fault to the first ``event`` (monotonic clock), None if either is missing."""
    ev = event_by_name(ctx.journal.events, event)
    t0 = event_by_name(ctx.journal.events, "fault.injected")
    return None if ev is None or t0 is None else round(ev.mono - t0.mono, 3)
