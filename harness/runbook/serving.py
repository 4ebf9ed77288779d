"""Runbook steps and phase helpers for an asset served by an inference endpoint.

The endpoint is the asset's ``served_by`` target; an asset without one skips these steps (and
its smoke objective does not apply). A scenario keeps one :class:`ServingState` and composes:

- preflight: :func:`preflight` (the endpoint is ready before the fault; the golden file read);
- baseline: :func:`record_reference` (the endpoint's answers to the golden inputs, which must
  equal the golden file's outputs when it has them);
- the runbook: :func:`redeploy` (the node reloads from the store), :func:`smoke_test` (golden
  outputs bit-identical), :func:`mark_ready` (the endpoint takes traffic again);
- verify: :func:`verify_outputs` (the smoke objective in the evidence);
- revert: :func:`reload_if_needed` (the node serves what it served before, reloaded if not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.errors import Inconclusive, StepFailed
from harness.golden import Golden, GoldenMatch, Rows
from harness.runbook.bind import bound
from harness.scenario import RunbookStep
from harness.targets.protocols import ServingEndpoint

if TYPE_CHECKING:
    from harness.context import DrillContext


@dataclass
class ServingState:
    golden: Golden | None = None
    #: the endpoint's answers to the golden inputs before the fault
    reference: Rows | None = None


def endpoint(ctx: DrillContext) -> ServingEndpoint | None:
    a = ctx.asset
    return None if a.served_by is None else ctx.adapters.inference(a.served_by)


def preflight(ctx: DrillContext, state: ServingState, *, required_by: str = "") -> None:
    """The endpoint answers ready before the fault, and the golden file is read. With
    ``required_by`` (why), an asset without endpoint or golden file is Inconclusive."""
    a = ctx.asset
    ep = endpoint(ctx)
    if required_by and (ep is None or a.golden is None):
        raise Inconclusive(f"{required_by}: asset {a.id} needs a serving endpoint and golden "
                           f"inputs")
    if ep is not None:
        r = ep.readiness()
        if not r.ready:
            raise Inconclusive(f"endpoint {ep.target.url} is not ready before the fault (HTTP "
                               f"{r.status} {r.detail}): nothing to compare with")
    if a.golden is not None:
        state.golden = Golden.load(a.golden)


def record_reference(ctx: DrillContext, state: ServingState) -> None:
    ep = endpoint(ctx)
    if ep is None or state.golden is None:
        return
    state.reference = ep.infer(state.golden.inputs)
    if state.golden.outputs is not None and state.reference != state.golden.outputs:
        raise Inconclusive("the endpoint's outputs for the golden inputs already differ from "
                           "the golden file before the fault")
    ctx.event("baseline.outputs", rows=len(state.reference))


def answers(ctx: DrillContext, state: ServingState) -> GoldenMatch | None:
    """The endpoint's answers to the golden inputs now, against the reference; None when there
    is no endpoint or no reference."""
    ep = endpoint(ctx)
    if ep is None or state.golden is None or state.reference is None:
        return None
    return state.golden.compare(ep.infer(state.golden.inputs), state.reference)


def steps(ctx: DrillContext, state: ServingState) -> list[RunbookStep]:
    """Redeploy, smoke test, mark ready: the serving half of a restore runbook."""
    return [redeploy(ctx, state), smoke_test(ctx, state), mark_ready(ctx, state)]


def redeploy(ctx: DrillContext, state: ServingState) -> RunbookStep:
    return bound("redeploy", _redeploy, ctx, state, "the serving node reloads from the store")


def _redeploy(ctx: DrillContext, state: ServingState) -> None:
    ep = endpoint(ctx)
    if ep is None:
        ctx.event("redeploy.skipped", reason="asset is not served by an endpoint")
        return
    ok, message = ep.load(timeout_s=ctx.inventory.step_timeout_s)
    if not ok:
        raise StepFailed(f"the node refused the restored weights: {message}")
    r = ep.wait_ready(ctx.inventory.step_timeout_s)
    if not r.ready:
        raise StepFailed(f"the node did not become ready: HTTP {r.status} {r.detail}")


def smoke_test(ctx: DrillContext, state: ServingState) -> RunbookStep:
    return bound("smoke-test", _smoke, ctx, state, "golden inputs, outputs bit-identical")


def _smoke(ctx: DrillContext, state: ServingState) -> None:
    match = answers(ctx, state)
    if match is None:
        ctx.event("smoke.skipped", reason="no endpoint or no golden inputs")
        return
    if not match.ok:
        raise StepFailed(f"{match.differ} of {match.total} golden outputs differ from the "
                         f"baseline")


def mark_ready(ctx: DrillContext, state: ServingState) -> RunbookStep:
    return bound("mark-ready", _mark_ready, ctx, state, "the endpoint takes traffic again")


def _mark_ready(ctx: DrillContext, state: ServingState) -> None:
    ep = endpoint(ctx)
    if ep is None:
        return
    r = ep.readiness()
    if not r.ready:
        raise StepFailed(f"endpoint not ready: HTTP {r.status} {r.detail}")
    ctx.event("traffic.ready", endpoint=ep.target.url)


def verify_outputs(ctx: DrillContext, state: ServingState) -> None:
    """The smoke objective: the endpoint, independently of the runbook, answers the golden
    inputs exactly as before the fault."""
    ep = endpoint(ctx)
    if ep is None:
        # nothing serves this asset: a smoke test does not apply (no smoke objective), which
        # is not the same as one that could not run
        ctx.event("smoke.not-applicable", reason="the asset is not served by an endpoint")
        return
    match = answers(ctx, state)
    if match is None:
        ctx.findings.smoke["golden"] = "not run: no golden inputs for the endpoint"
        return
    ctx.findings.smoke.update({"golden_inputs": match.total, "identical_outputs": match.same,
                               "endpoint": ep.target.url})
    if not match.ok:
        ctx.fail(f"golden outputs: {match.differ} of {match.total} differ from the baseline")


def reload_if_needed(ctx: DrillContext, state: ServingState) -> None:
    """Revert: the node ready and answering as before the fault, reloaded from the (reverted)
    store if not; StepFailed when it does not come back."""
    ep = endpoint(ctx)
    if ep is None:
        return
    if ep.readiness().ready:
        match = answers(ctx, state)
        if match is None or match.ok:
            return
    ok, message = ep.load(timeout_s=ctx.inventory.step_timeout_s)
    if not ok or not ep.wait_ready(ctx.inventory.step_timeout_s).ready:
        raise StepFailed(f"the node did not come back after revert: {message}")
