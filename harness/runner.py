"""Runs one drill through its phases and derives the verdict from what was recorded.

preflight -> baseline -> inject -> detect -> runbook -> verify -> revert -> evidence

Revert runs whenever inject was reached: after a failure, an exception or a signal. From inject
until the evidence is sealed, SIGINT, SIGTERM and SIGHUP are held (harness/signals.py): the first
one stops the drill at its next safe point, then revert runs and the evidence is written and
sealed through the caller's sink. The verdict comes from the findings and from RTO/RPO computed
from the journal's events (harness/drill_evidence.py); nothing in the evidence is typed in.
"""

from __future__ import annotations

import dataclasses
import secrets
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from harness import hooks, lease
from harness.blast import Fence, Touch, describe_all
from harness.context import Adapters, DrillContext, Progress
from harness.drill_evidence import build_evidence
from harness.errors import GuardRefused, Inconclusive, UsageError
from harness.guards import require_drill_safe
from harness.hosts import drill as host_checks
from harness.inventory import Inventory
from harness.journal import Clock, Journal
from harness.model import Evidence, Outcome, Phase, event_by_name, section_from_json
from harness.params import Given, ParamError, ParamValues
from harness.params import resolve as resolve_params
from harness.provenance import ExerciseInput
from harness.scenario import RunbookStep, Scenario, implementation, resolve_asset, variant_of
from harness.signals import DrillSignals, Interrupted, Received, interruption_record

#: A replacement for a runbook step: gets the drill context and the original step's function.
StepOverride = Callable[[DrillContext, Callable[[], None]], None]

#: Writes and seals a drill's evidence into its folder (e.g. reports.render.write_evidence with
#: the signing key). run_drill calls it while signals are still held, so no Ctrl-C or SIGTERM can
#: leave a drill that broke something without evidence.json, SHA256SUMS and its history row.
EvidenceSink = Callable[[Evidence, Path], None]


@dataclass(frozen=True)
class DrillRequest:
    scenario: type[Scenario]
    variant: str
    asset_id: str
    evidence_root: Path
    dry_run: bool = False
    #: who, why, when planned (from the command line); the inventory's exercise: fills gaps
    exercise: ExerciseInput = field(default_factory=ExerciseInput)
    #: the scenario's parameters, resolved (harness/session.py); None: every default
    params: ParamValues | None = None


@dataclass(frozen=True)
class DrillResult:
    evidence: Evidence
    directory: Path
    interrupted: bool
    #: what site hooks (harness/hooks.py) raised after the evidence was sealed
    hook_errors: tuple[str, ...] = ()


def new_drill_id(clock: Clock, scenario: str) -> str:
    return f"{clock.utc().strftime('%Y%m%dT%H%M%SZ')}-{scenario}-{secrets.token_hex(3)}"


def validate_request(inventory: Inventory, req: DrillRequest) -> ParamValues:
    """Reject a request that cannot make sense before anything is touched (a usage error):
    an unknown variant or asset, a scenario that does not apply to the asset (the one rule,
    Scenario.applies_to), parameters the scenario does not declare or whose values it
    refuses. Returns the parameters the drill runs with."""
    cls = req.scenario
    variant_of(cls, req.variant)
    resolve_asset(inventory, cls, req.asset_id)
    given = [] if req.params is None else [
        Given(req.params.sources.get(k, "request"), {k: v})
        for k, v in req.params.values.items() if req.params.sources.get(k) != "default"]
    try:
        return resolve_params(cls.params, given, scenario=f"scenario {cls.name!r}")
    except ParamError as exc:
        raise UsageError(exc.message) from exc


def run_drill(inventory: Inventory, req: DrillRequest, *,
              overrides: Mapping[str, StepOverride] | None = None,
              clock: Clock | None = None, progress: Progress = print,
              sink: EvidenceSink | None = None,
              lease_resolver: lease.Resolver | None = None,
              adapters: Mapping[str, object] | None = None) -> DrillResult:
    """Run one drill end to end; ``sink`` writes and seals its evidence before signals are let
    go (without one, the caller writes it, unprotected). Raises UsageError for a bad request
    (before anything runs); every other outcome is expressed in the returned evidence.
    Leases are kept in the inventory's targets unless ``lease_resolver`` says otherwise.
    ``adapters`` hands in adapters by target name (fakes, a site's own clients); the rest are
    built from the inventory."""
    # a name with one implementation per platform: the asset and variant choose it
    req = dataclasses.replace(req, scenario=implementation(inventory, req.scenario, req.asset_id,
                                                           req.variant))
    req = dataclasses.replace(req, params=validate_request(inventory, req))
    try:
        hooks.manager()  # a site's plug-in that does not match refuses the drill up front
    except pluggy.PluginValidationError as exc:
        raise UsageError(f"a {hooks.ENTRY_POINT_GROUP} plug-in does not match drillbook's "
                         f"hooks: {exc}") from exc
    signals = DrillSignals().install()
    try:
        result = _run_drill(inventory, req, signals, overrides, clock or Clock(), progress, sink,
                            lease_resolver, adapters)
    finally:
        signals.uninstall()
    # a signal that came while the evidence was sealed: the evidence is complete, exit as stopped
    return dataclasses.replace(result, interrupted=result.interrupted or bool(signals.received))


def _run_drill(inventory: Inventory, req: DrillRequest, signals: DrillSignals,
               overrides: Mapping[str, StepOverride] | None, clock: Clock, progress: Progress,
               sink: EvidenceSink | None, lease_resolver: lease.Resolver | None,
               provided: Mapping[str, object] | None = None) -> DrillResult:
    drill_id = new_drill_id(clock, req.scenario.name)
    out_dir = req.evidence_root / drill_id
    out_dir.mkdir(parents=True, exist_ok=False)
    journal = Journal(out_dir / "journal.jsonl", clock)
    asset = inventory.assets[req.asset_id]
    work_dir = req.evidence_root / ".work"
    ctx = DrillContext(drill_id=drill_id, inventory=inventory, asset=asset, variant=req.variant,
                       journal=journal, adapters=Adapters(inventory, work_dir, provided), clock=clock,
                       work_dir=work_dir, progress=progress)
    signals.where = lambda: (ctx.phase.value, ctx.current_step)
    signals.waiting = lambda: _waiting_for(ctx, out_dir)
    ctx.params = req.params or ParamValues()
    scenario = req.scenario(ctx)
    unknown = set(overrides or {}) - {s.name for s in scenario.runbook()}
    if unknown:
        raise UsageError(f"override for unknown runbook step(s): {', '.join(sorted(unknown))}")
    started = clock.utc()
    journal.note("drill", drill_id=drill_id, scenario=req.scenario.name, variant=req.variant,
                 asset=asset.id, inventory=str(inventory.path), dry_run=req.dry_run,
                 params=ctx.params.to_json(), param_sources=dict(ctx.params.sources))
    progress(f"drill {drill_id}: {req.scenario.name} ({req.variant}) on {asset.id}")
    _hook(ctx, "drillbook_drill_started", drill_id=drill_id, scenario=req.scenario.name,
          variant=req.variant, asset=asset.id, site=inventory.site)
    # the engine's own adapters: leases are written outside any scenario's blast radius
    own = Adapters(inventory, work_dir)
    leases = lease.DrillLeases(
        lease_resolver or lease.LeaseResolver(inventory, own.s3, own.postgres, own.kube),
        drill_id=drill_id, scenario=req.scenario.name, variant=req.variant, asset=asset.id,
        evidence_dir=str(out_dir.resolve()))
    injected = False
    stopped: str | None = None  # where an interruption stopped the drill
    try:
        with signals.abortable():  # nothing is broken yet: a signal stops the drill at once
            # every declared resource leased where every driller sees it, before anything is read
            leases.acquire(scenario.touches())
            _phase(ctx, Phase.PREFLIGHT)
            _declare_blast_radius(ctx, scenario)
            host_checks.preflight(ctx)
            scenario.preflight()
            _phase(ctx, Phase.BASELINE)
            scenario.baseline()
        if req.dry_run:
            ctx.inconclusive("dry run: preflight and baseline only, no fault was injected")
        else:
            _phase(ctx, Phase.INJECT, signals)
            signals.checkpoint("before inject")
            injected = True
            ctx.event("fault.injected")
            scenario.inject()
            ctx.event("fault.inject.completed")
            _phase(ctx, Phase.DETECT, signals)
            _detect(ctx, scenario, signals)
            _phase(ctx, Phase.RUNBOOK, signals)
            if _runbook(ctx, scenario.runbook(), overrides or {}, signals):
                ctx.event("recovery.completed")
            signals.checkpoint("before verify")
            _phase(ctx, Phase.VERIFY, signals)
            before = len(ctx.findings.failures) + len(ctx.findings.inconclusive)
            scenario.verify()
            host_checks.verify(ctx)
            if len(ctx.findings.failures) + len(ctx.findings.inconclusive) == before and \
                    _checks_held(ctx) and \
                    event_by_name(journal.events, "recovery.completed") is not None:
                ctx.event("recovery.verified")
    except GuardRefused as exc:
        ctx.inconclusive(f"guard refused: {exc}")
    except Inconclusive as exc:
        ctx.inconclusive(str(exc))
    except Interrupted as exc:
        stopped = exc.stopped
    except KeyboardInterrupt:  # raised by code (a step, a plug-in), not by a held signal
        signals.record_keyboard_interrupt()
        stopped = f"during {ctx.phase.value}"
    except Exception as exc:  # noqa: BLE001 - scenarios may be a site's plug-ins
        journal.note("traceback", text=traceback.format_exc())
        ctx.inconclusive(f"internal error in {ctx.phase.value}: {type(exc).__name__}: {exc}")
    finally:
        if injected:
            _revert(ctx, scenario, signals)
        else:
            _cleanup(ctx, scenario)
    interrupted = _record_interruption(ctx, signals.poll(), injected, stopped)
    _phase(ctx, Phase.EVIDENCE, signals)
    for problem in leases.problems:
        ctx.inconclusive(problem)
    try:
        try:
            evidence = build_evidence(ctx, req, started, scenario=scenario,
                                      overrides=sorted(overrides or {}))
            journal.note("verdict", verdict=evidence.verdict.value,
                         reasons=list(evidence.reasons))
        finally:
            journal.close()
        if sink is not None:
            sink(evidence, out_dir)
    finally:
        # leases go only once the evidence is sealed
        if injected and not ctx.findings.reverted:
            # the target may be broken: the leases stay, so nobody drills it and `drillbook
            # recover` finds this drill once the process has exited
            leases.keep_as_orphan("revert-failed")
            progress("leases kept: the target may not be as found; run `drillbook recover`")
        else:
            leases.release()
        for problem in leases.problems:
            progress(f"lease: {problem}")
    return DrillResult(evidence, out_dir, interrupted, _observe(evidence, progress))


def _hook(ctx: DrillContext, name: str, **kwargs: Any) -> None:
    """A site hook during the drill: an exception in it is a deviation in the evidence (and
    its traceback in the journal), never a change of verdict."""
    def report(text: str, trace: str) -> None:
        ctx.journal.note("traceback", hook=name, text=trace)
        ctx.deviation(text)
    hooks.call(name, report, **kwargs)


def _observe(evidence: Evidence, progress: Progress) -> tuple[str, ...]:
    """The sealed evidence to the site's hooks: each objective, then the verdict. The evidence
    cannot change any more, so a hook that raises is said on the progress stream."""
    def report(text: str, trace: str) -> None:
        progress(f"{text}\n{trace}")
    errors = [e for o in evidence.objectives for e in hooks.call(
        "drillbook_objective", report, drill_id=evidence.drill_id, objective=o)]
    errors += hooks.call("drillbook_verdict", report, evidence=evidence)
    return tuple(errors)


def _checks_held(ctx: DrillContext) -> bool:
    """No smoke test and no integrity check of the verify phase was missed: a scenario may
    record those without a finding of its own (the verdict judges them), and a recovery they
    contradict is not verified, so it gets no verified RTO."""
    smoke_passed, _ = ctx.findings.smoke_result().judged()
    return smoke_passed is not False and all(
        c.ok for c in ctx.journal.integrity if c.phase is Phase.VERIFY)


def _declare_blast_radius(ctx: DrillContext, scenario: Scenario) -> None:
    """Record what the drill may touch, refuse unless every touched target is drill-safe, and
    fence the adapters to it for the rest of the drill (the safety copy's own folder and scratch
    databases are the engine's, outside any asset)."""
    touches = scenario.touches()
    ctx.declared = tuple(touches)
    ctx.event("blast-radius.declared", resources=describe_all(touches), count=len(touches))
    if type(scenario).destructive:
        if not touches:
            raise GuardRefused(f"scenario {type(scenario).name!r} is destructive but declares "
                               f"nothing it touches (Scenario.touches)")
        for target in dict.fromkeys(t.target for t in touches):
            require_drill_safe(ctx.inventory, target)
    scratch = [Touch.s3(ctx.asset.store, ctx.inventory.safety_bucket, f"{ctx.drill_id}/"),
               *scenario.scratch_touches()]
    ctx.adapters.set_fence(Fence(touches, scratch))


def _cleanup(ctx: DrillContext, scenario: Scenario) -> None:
    """A drill that ended before inject broke nothing: drop what preflight and baseline made
    (safety copies, scratch files) and touch nothing else."""
    try:
        scenario.cleanup()
    except Exception as exc:  # noqa: BLE001 - scenarios may be a site's plug-ins
        ctx.journal.note("traceback", text=traceback.format_exc())
        ctx.inconclusive(f"cleanup after an early stop failed: {type(exc).__name__}: {exc}")


def _phase(ctx: DrillContext, phase: Phase, signals: DrillSignals | None = None) -> None:
    if signals is not None:
        # a signal already sent belongs to the phase that is ending: take it before moving on
        # (on a starved host the watcher thread may not have run yet)
        signals.poll()
    # in the leases first: a drill that dies in this phase is found at it; up to inject a lease
    # that cannot be written stops the drill before anything is broken
    lease.note_phase(ctx.drill_id, phase.value,
                     strict=phase in (Phase.PREFLIGHT, Phase.BASELINE, Phase.INJECT))
    ctx.phase = phase
    ctx.event(f"phase.{phase.value}")
    ctx.progress(f"{phase.value}")
    _hook(ctx, "drillbook_phase_started", drill_id=ctx.drill_id, phase=phase.value)


def _detect(ctx: DrillContext, scenario: Scenario, signals: DrillSignals) -> None:
    inv = ctx.inventory
    deadline = ctx.clock.mono() + inv.detect_timeout_s
    probes = 0
    while True:
        signals.checkpoint("while waiting for the fault to be detected")
        probes += 1
        if scenario.detect():
            ctx.event("fault.detected", probes=probes)
            ctx.progress(f"  fault detected after {probes} probe(s)")
            return
        if ctx.clock.mono() >= deadline:
            ctx.fail(f"fault not detected within {inv.detect_timeout_s:g} s ({probes} probes)")
            return
        ctx.clock.sleep(inv.probe_interval_s)


def _runbook(ctx: DrillContext, steps: list[RunbookStep],
             overrides: Mapping[str, StepOverride], signals: DrillSignals) -> bool:
    """Run the steps in order; stop at the first that does not succeed. True if all succeeded.
    A held signal stops it before the next step starts."""
    for step in steps:
        signals.checkpoint(f"before runbook step {step.name!r}")
        fn = step.run
        if step.name in overrides:
            override = overrides[step.name]
            ctx.journal.note("override", step=step.name)

            def fn(o: StepOverride = override, orig: Callable[[], None] = step.run) -> None:
                o(ctx, orig)

        outcome = ctx.run_step(step.name, _polled(fn, signals))
        if outcome is not Outcome.OK:
            last = ctx.journal.steps[-1].message
            ctx.fail(f"runbook step {step.name!r} {outcome.value}: {last}")
            return False
    return True


def _polled(fn: Callable[[], None], signals: DrillSignals) -> Callable[[], None]:
    """``fn``, then a look at the signals while its step is still the current one: a signal
    that came during the step is recorded as during it (the watcher thread may not have run
    yet when the step ends)."""
    def run() -> None:
        try:
            fn()
        finally:
            signals.poll()
    return run


def _revert(ctx: DrillContext, scenario: Scenario, signals: DrillSignals) -> None:
    """Run revert once. Signals are held from inject on, so none can cut it short; revert
    checks the target against the baseline, so OK means the target was verified as found."""
    _phase(ctx, Phase.REVERT, signals)
    try:
        outcome = ctx.run_step("revert", _polled(scenario.revert, signals))
    except KeyboardInterrupt:  # raised by the revert code itself; run_step journaled the step
        outcome = Outcome.ERROR
    ctx.findings.reverted = outcome is Outcome.OK
    if outcome is not Outcome.OK:
        ctx.fail("revert did not complete: the target may NOT be as it was found "
                 f"({ctx.journal.steps[-1].message})")


def _record_interruption(ctx: DrillContext, received: list[Received], injected: bool,
                         stopped: str | None) -> bool:
    """Journal the signals that came and, if any did, say in the evidence where the drill was
    interrupted and whether revert verified the target as found. True if interrupted."""
    for r in received:
        ctx.journal.note("signal", **r.to_json())
    if not received:
        return False
    reason, section = interruption_record(received, injected=injected, stopped=stopped,
                                          as_found=ctx.findings.reverted if injected else None)
    # typed when it fits InterruptionSection; a shape it does not fit is still kept (generic)
    ctx.findings.typed_sections["interruption"] = section_from_json("interruption", section)
    ctx.inconclusive(reason)
    return True


def _waiting_for(ctx: DrillContext, out_dir: Path) -> str:
    """What a repeated signal is told drillbook is waiting for."""
    a = ctx.asset
    target = (f"{a.id} (database {a.database})" if a.database else
              f"{a.id} (s3://{a.bucket}/{a.prefix})" if a.bucket else a.id)
    if ctx.phase is Phase.REVERT:
        return (f"revert in progress: restoring {target}; drillbook will exit when the target is "
                f"back and evidence is sealed")
    if ctx.phase is Phase.EVIDENCE:
        return f"sealing the evidence in {out_dir}; drillbook will exit when it is written"
    running = f"step {ctx.current_step!r}" if ctx.current_step else f"the {ctx.phase.value} phase"
    return (f"waiting for {running} to reach a safe point; then revert restores {target} and "
            f"evidence is sealed before drillbook exits")
