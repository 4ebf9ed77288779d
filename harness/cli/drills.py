"""``drillbook run``, ``drillbook drill --random-tier1`` and ``drillbook scenarios``: the
commands that run drills, all through one drill session (harness/session.py); this module only
turns options into a session and its result into the summary and the exit code."""

from __future__ import annotations

import argparse
import os
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from harness.cli.parser import progress
from harness.errors import UsageError
from harness.inventory import Inventory, load_inventory
from harness.model import EXIT_INTERRUPTED, Evidence
from harness.scenario import implementations

if TYPE_CHECKING:
    from harness.provenance import ExerciseInput
    from harness.session import DrillSession, SessionResult


def inventory_for(args: argparse.Namespace) -> Inventory:
    """--inventory, else $DRILLBOOK_INVENTORY, else the lab's."""
    if args.inventory is not None:
        return load_inventory(args.inventory)
    env = os.environ.get("DRILLBOOK_INVENTORY")
    if env:
        return load_inventory(env)
    from lab.stack import default_root
    path = default_root() / "inventory.yaml"
    if not path.exists():
        raise UsageError(f"no --inventory given and the lab has none at {path}: run "
                         f"`drillbook lab up` first, or pass --inventory PATH")
    return load_inventory(path)


def _session(args: argparse.Namespace, inventory: Inventory) -> tuple[DrillSession, Path | None]:
    # here, not at the top: the session brings the runner, the adapters and their clients
    # (boto3, kubernetes, psycopg); `drillbook scenarios` needs none of them, and gc and
    # recover (which share inventory_for) not the runner
    from harness.session import DrillSession, EvidenceWriter
    writer = EvidenceWriter.for_site(inventory, getattr(args, "signing_key", None))
    return DrillSession(inventory, args.evidence_dir, sink=writer,
                        progress=(lambda m: None) if args.quiet else progress), writer.key


def cmd_run(args: argparse.Namespace) -> int:
    inventory = inventory_for(args)
    exercise = _exercise_input(args)
    session, key = _session(args, inventory)
    plan = session.plan(args.scenario, asset=args.asset, variant=args.variant,
                        cli_params=dict(args.param))
    return summarise(session.run(plan, exercise=exercise, dry_run=args.dry_run), key)


def cmd_drill(args: argparse.Namespace) -> int:
    from scenarios import random_tier1

    session, key = _session(args, inventory_for(args))
    sel, result = random_tier1.run_random_tier1(session, seed=args.seed)
    print(f"seed: {sel.seed} scenario: {sel.scenario} variant: {sel.variant} asset: {sel.asset}")
    return summarise(result, key)


def summarise(result: SessionResult, key: Path | None) -> int:
    """Print the verdict, the objectives and where the evidence is; the exit code."""
    ev, written = result.evidence, result.written
    print(f"verdict: {ev.verdict.value}")
    for name, o in (("RTO", ev.rto), ("RPO", ev.rpo)):
        measured = "not measured" if o.measured_s is None else f"{o.measured_s:.2f} s"
        met = {True: "met", False: "MISSED", None: "not measured"}[o.met]
        print(f"{name}: {measured} (target {o.target_s:g} s, {met})")
    if result.plan.params.values:
        print(f"params: {result.plan.params.describe()}")
    for r in ev.reasons:
        print(f"reason: {r}")
    if written is not None:
        print(f"report: {written.paths['html']}")
        print(f"evidence: {written.paths['json']}")
    print("signed: " + (f"yes ({key})" if written is not None and written.signed else
                        "NO (no signing key: drillbook keygen, then --signing-key)"))
    if result.interrupted:
        print("interrupted: " + _interruption_line(ev))
        return EXIT_INTERRUPTED
    return ev.verdict.exit_code


def _interruption_line(ev: Evidence) -> str:
    where = ev.sections.get("interruption")
    if where is None:
        return "a signal came while the evidence was being sealed; the evidence is complete"
    if not where["fault_injected"]:
        return f"{where['signal']} before the fault was injected; nothing was broken"
    state = ("the target was verified as found" if where["target_as_found"] else
             "the target was NOT verified as found: see the revert step in the report")
    return f"{where['signal']} during {where['phase']}; revert ran; {state}"


def _exercise_input(args: argparse.Namespace) -> ExerciseInput:
    from harness.provenance import ExerciseInput, parse_participant
    try:
        people = tuple(parse_participant(p) for p in args.participant)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    if args.planned_date is not None:
        try:
            date.fromisoformat(args.planned_date)
        except ValueError as exc:
            raise UsageError(f"--planned-date {args.planned_date!r} is not a date "
                             f"(YYYY-MM-DD)") from exc
    return ExerciseInput(title=args.title, type=args.exercise_type, reason=args.reason,
                         planned_date=args.planned_date, participants=people,
                         approver=args.approver)


def cmd_scenarios(args: argparse.Namespace) -> int:
    for name, members in sorted(implementations().items()):
        for cls in members:
            print(f"{name:22} variants: {', '.join(cls.variants):14} {cls.summary}")
            if len(members) > 1:
                # the same name on several platforms: the asset's kind picks the implementation
                print(f"{'':24}on {cls.platform}: assets of kind {', '.join(cls.asset_kinds)}")
            for p in cls.params:
                print(f"{'':24}--param {p.describe()}")
    return 0
