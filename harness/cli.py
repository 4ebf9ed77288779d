"""The ``drillbook`` command.

    drillbook run SCENARIO [--variant V] [--asset ID] [--inventory PATH]   run one drill
    drillbook drill --random-tier1 [--seed N]                             the quarterly drill
    drillbook scenarios                                                   list installed scenarios
    drillbook inventory check PATH                                        validate an inventory
    drillbook report DIR [--for ID --action ... | --finding ...]         re-render a drill's reports
    drillbook keygen [--out PREFIX]                                       make an ed25519 key pair
    drillbook verify DIR [--public-key PUB]                               check hashes and signature
    drillbook history [--evidence-dir DIR]                                RTO/RPO across drills
    drillbook recover [--drill ID] [--dry-run]                            restore dead drills' targets
    drillbook lab up|down|status|env|backup|destroy                       the embedded lab
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

from harness import cli_args as a
from harness.errors import DrillbookError, InventoryError, UsageError
from harness.inventory import Inventory, load_inventory
from harness.model import EXIT_INTERRUPTED, EXIT_USAGE, Evidence, Verdict
from harness.provenance import ExerciseInput, parse_participant
from harness.runner import DrillRequest, DrillResult, run_drill
from harness.scenario import discover, get_scenario

EXIT_CODES = f"""exit codes:
  0  PASS          every objective met (RTO, RPO, integrity, golden outputs)
  1  FAIL          an objective was missed, or recovery did not really restore the asset
  2  INCONCLUSIVE  a check could not run (target unreachable, no restore point, tool missing,
                   guard refused); never a pass
  {EXIT_USAGE}  usage error     bad options or values, unknown scenario, malformed inventory
                   (file:line: field: message); nothing ran
  {EXIT_INTERRUPTED}  interrupted   SIGINT (Ctrl-C), SIGTERM or SIGHUP; after inject the drill
                   stopped at a safe point, revert ran and the evidence was sealed before exit"""


VERIFY_EXIT_CODES = """exit codes:
  0  intact and signed (by the pinned key, when --public-key or $DRILLBOOK_PUBLIC_KEY is given)
  1  a file changed, appeared (any name) or disappeared, a link or special file is in the
     folder, the signature is bad or by another key, or a key is pinned and there is no
     signature (a stripped signature looks exactly like an unsigned folder)
  2  intact but unsigned, and no key pinned: nothing vouches for who wrote it
  3  usage error: the folder or the key cannot be read"""


def _err(msg: str) -> None:
    print(f"drillbook: {msg}", file=sys.stderr, flush=True)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _Parser(argparse.ArgumentParser):
    """argparse, but bad usage exits with drillbook's usage code instead of argparse's 2
    (2 is INCONCLUSIVE here)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        _err(message)
        sys.exit(EXIT_USAGE)

    def _get_values(self, action: argparse.Action, arg_strings: list[str]) -> Any:
        # Python 3.11's argparse drops the value of `--opt=--` and stores [] without calling
        # the option's type; give the type the "--" it was given instead.
        if arg_strings == ["--"] and action.option_strings and action.nargs is None:
            return self._get_value(action, "--")
        return super()._get_values(action, arg_strings)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="drillbook",
                description="Disaster-recovery drills for on-premises AI infrastructure: break "
                            "something real, recover it with the automated runbook, and write "
                            "measured RTO/RPO evidence.",
                epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run one drill", epilog=EXIT_CODES,
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Run one drill: preflight, baseline, inject the fault, detect "
                                     "it, run the recovery runbook, verify, revert, write "
                                     "evidence/<drill-id>/.")
    run.add_argument("scenario", type=a.name, help="scenario name (see `drillbook scenarios`)")
    run.add_argument("--variant", type=a.name,
                     help="scenario variant (default: the scenario's first)")
    run.add_argument("--asset", type=a.name, help="asset id from the inventory (default: the "
                                                  "only asset the scenario fits)")
    run.add_argument("--inventory", type=a.existing_file,
                     help="site inventory YAML (default: $DRILLBOOK_INVENTORY, else the lab's)")
    run.add_argument("--evidence-dir", type=a.output_dir, default=Path("evidence"),
                     help="where drill folders are written (default: ./evidence)")
    run.add_argument("--dry-run", action="store_true",
                     help="preflight and baseline only: prove the drill could run, break nothing "
                          "(verdict INCONCLUSIVE, since nothing was recovered)")
    run.add_argument("--quiet", action="store_true", help="print only the summary")
    ex = run.add_argument_group("exercise record (absent is recorded as absent; the inventory's "
                                "exercise: section fills what is not given here)")
    ex.add_argument("--title", type=a.text,
                    help="exercise title (default: scenario, variant and asset)")
    ex.add_argument("--exercise-type", type=a.text,
                    help="e.g. 'quarterly DR test', 'pre-release gate'")
    ex.add_argument("--reason", type=a.text, help="why this scenario was chosen for this exercise")
    ex.add_argument("--planned-date", type=a.iso_date,
                    help="the date the exercise was planned for (YYYY-MM-DD)")
    ex.add_argument("--participant", action="append", default=[], metavar="NAME:ROLE",
                    type=a.participant, help="a participant and their role (repeatable)")
    ex.add_argument("--approver", type=a.text, help="who approved the exercise")
    run.add_argument("--signing-key", type=a.existing_file,
                     help="ed25519 private key to sign the evidence with (default: "
                          "$DRILLBOOK_SIGNING_KEY, else the inventory's evidence.signing_key)")

    sub.add_parser("scenarios", help="list installed scenarios")

    drl = sub.add_parser("drill", help="the quarterly drill: a random Tier 1 asset, end to end",
                         epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    drl.add_argument("--random-tier1", action="store_true", required=True,
                     help="pick a random Tier 1 asset and a scenario that fits its kind")
    drl.add_argument("--seed", type=a.seed, help="seed for the pick, a whole number (default: "
                                                 "random; recorded)")
    drl.add_argument("--inventory", type=a.existing_file,
                     help="site inventory YAML (default as for run)")
    drl.add_argument("--evidence-dir", type=a.output_dir, default=Path("evidence"))
    drl.add_argument("--quiet", action="store_true", help="print only the summary")

    inv = sub.add_parser("inventory", help="inventory tools")
    inv_sub = inv.add_subparsers(dest="inventory_command", required=True, parser_class=_Parser)
    check = inv_sub.add_parser("check", help="validate an inventory file; exit 0 if valid")
    check.add_argument("path", type=a.any_path)

    rep = sub.add_parser("report", help="re-render a drill's reports from its evidence.json",
                         description="Re-render report.html, junit.xml and summary.md from "
                                     "evidence.json and the findings.yaml sidecar, then re-seal "
                                     "the folder. --finding / --for record a finding or a "
                                     "corrective action in findings.yaml first.")
    rep.add_argument("directory", type=a.existing_dir)
    rep.add_argument("--finding", metavar="TEXT", type=a.text,
                     help="add a finding of the team's own")
    rep.add_argument("--for", dest="for_id", metavar="ID", type=a.name,
                     help="the finding (e.g. F1) a corrective action is for")
    rep.add_argument("--action", type=a.text, help="the corrective action")
    rep.add_argument("--owner", type=a.text, help="who owns the corrective action")
    rep.add_argument("--due", type=a.iso_date, help="when it is due (YYYY-MM-DD)")
    rep.add_argument("--status", default="open", choices=a.FINDING_STATUSES,
                     help="open, in-progress, done or accepted-risk (default: open)")
    rep.add_argument("--signing-key", type=a.existing_file,
                     help="key to re-sign with (default: $DRILLBOOK_SIGNING_KEY)")
    rep.add_argument("--unsigned", action="store_true",
                     help="re-render a signed folder without a key, dropping its signature")

    kg = sub.add_parser("keygen", help="make an ed25519 signing key pair (PREFIX.key, PREFIX.pub)")
    kg.add_argument("--out", type=a.output_prefix, default=Path("drillbook-signing"),
                    help="path prefix of the two files (default: ./drillbook-signing)")
    kg.add_argument("--if-missing", action="store_true",
                    help="do nothing (exit 0) when the key already exists")

    ver = sub.add_parser("verify", help="check a drill folder's SHA256SUMS and signature",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Re-hash every file in the folder (whatever its name) "
                                     "against SHA256SUMS and check the ed25519 signature.",
                         epilog=VERIFY_EXIT_CODES)
    ver.add_argument("directory", type=a.existing_dir)
    ver.add_argument("--public-key", type=a.existing_file,
                     help="the public key to trust (default: $DRILLBOOK_PUBLIC_KEY, else the "
                          "key recorded beside the signature)")

    hist = sub.add_parser("history", help="RTO/RPO per scenario and asset across drills; "
                                          "flags regressions; writes the HTML index")
    hist.add_argument("--evidence-dir", type=a.output_dir, default=Path("evidence"))
    hist.add_argument("--tolerance", type=a.fraction_or_more, default=None,
                      help="relative RTO increase that counts as a regression (default 0.2)")
    hist.add_argument("--min-delta", type=a.seconds, default=None,
                      help="absolute RTO increase in seconds that must also be exceeded "
                           "(default 1.0)")
    hist.add_argument("--fail-on-regression", action="store_true",
                      help="exit 1 when the newest drill of any series is a regression")

    rec = sub.add_parser(
        "recover", help="find drills that died after inject, restore their targets from the "
                        "safety copies, close their evidence",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Find ORPHANED drills (a lease nobody renews, in any of the site's targets, "
                    "from any host; a local drill folder with no verdict), restore each resource "
                    "they touched from the safety copy recorded in the lease, verify it against "
                    "the state the drill found, write the orphan's evidence (INCONCLUSIVE, "
                    "\"harness died at PHASE\"), and release the leases.",
        epilog="exit codes:\n  0  every orphan restored and verified as found (or none)\n"
               "  1  a target was restored but still differs from how it was found\n"
               "  2  something could not be tried (safety copy missing or on another host, "
               "target unreachable)\n"
               f"  {EXIT_USAGE}  usage error")
    rec.add_argument("--inventory", type=a.existing_file,
                     help="site inventory YAML (default as for run)")
    rec.add_argument("--evidence-dir", type=a.output_dir, default=Path("evidence"),
                     help="also look for local drill folders with no verdict here")
    rec.add_argument("--drill", type=a.name, help="recover only this drill id")
    rec.add_argument("--dry-run", action="store_true",
                     help="list the orphans and what would be restored; change nothing")

    from harness.gc import add_parser as add_gc_parser  # the whole command lives in gc.py
    add_gc_parser(sub)

    lab = sub.add_parser("lab", help="the embedded lab on 127.0.0.1",
                         description="The embedded lab: Ceph RGW, restic, an inference node, on "
                                     "127.0.0.1, rooted in --dir (default $DRILLBOOK_LAB_DIR or "
                                     "./.lab).")
    lab.add_argument("--dir", type=a.output_dir, help="lab directory")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True, parser_class=_Parser)
    up = lab_sub.add_parser("up", help="bring the lab up (idempotent; restarts what stopped)")
    up.add_argument("--model-size", default="8MiB", type=a.size,
                    help="size of the generated model on first start, e.g. 8MiB, 512MiB, 2GiB")
    lab_sub.add_parser("down", help="stop every lab process (data stays)")
    lab_sub.add_parser("status", help="show each part of the lab")
    lab_sub.add_parser("env", help="print shell exports for the AWS CLI / boto3 / restic")
    lab_sub.add_parser("backup", help="take a restic backup of the models bucket now")
    lab_sub.add_parser("destroy", help="stop the lab and delete its directory")
    return p


def parse_size(text: str) -> int:
    try:
        return a.size(text)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(str(exc)) from exc


def _inventory_for(args: argparse.Namespace) -> Inventory:
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


def cmd_run(args: argparse.Namespace) -> int:
    cls = get_scenario(args.scenario)
    inventory = _inventory_for(args)
    asset_id = args.asset
    if asset_id is None:
        fits = [a.id for a in inventory.assets.values() if a.kind in cls.asset_kinds]
        if len(fits) != 1:
            raise UsageError(f"give --asset: {len(fits)} assets fit {cls.name} "
                             f"({', '.join(fits) or 'none'})")
        asset_id = fits[0]
    from harness import signing
    exercise = _exercise_input(args)
    key = signing.resolve_key(args.signing_key, inventory.evidence.signing_key)
    if key is not None:
        signing.load_private_key(key)  # a bad key is a usage error before anything is broken
    req = DrillRequest(cls, args.variant or cls.variants[0], asset_id, args.evidence_dir,
                       dry_run=args.dry_run, exercise=exercise)
    sink = _Sealer(key)
    result = run_drill(inventory, req, progress=(lambda m: None) if args.quiet else _progress,
                       sink=sink)
    return _summarise(result, sink)


def cmd_drill(args: argparse.Namespace) -> int:
    from harness import signing
    from scenarios.random_tier1 import run_random_tier1
    inventory = _inventory_for(args)
    key = signing.resolve_key(getattr(args, "signing_key", None), inventory.evidence.signing_key)
    if key is not None:
        signing.load_private_key(key)
    sink = _Sealer(key)
    sel, result = run_random_tier1(inventory, args.evidence_dir, seed=args.seed,
                                   progress=(lambda m: None) if args.quiet else _progress,
                                   sink=sink)
    print(f"seed: {sel.seed} scenario: {sel.scenario} variant: {sel.variant} asset: {sel.asset}")
    return _summarise(result, sink)


class _Sealer:
    """The evidence sink of `run` and `drill`: writes, renders, records in the history and seals
    (signed with ``key`` when given). run_drill calls it while signals are still held."""

    def __init__(self, key: Path | None) -> None:
        self.key = key
        self.paths: dict[str, Path] = {}
        self.signed = False

    def __call__(self, evidence: Evidence, directory: Path) -> None:
        from reports.render import write_evidence
        written = write_evidence(evidence, directory, signing_key=self.key)
        self.paths, self.signed = dict(written.paths), written.signed


def _summarise(result: DrillResult, sealed: _Sealer) -> int:
    paths, key = sealed.paths, sealed.key
    ev = result.evidence
    print(f"verdict: {ev.verdict.value}")
    for name, o in (("RTO", ev.rto), ("RPO", ev.rpo)):
        measured = "not measured" if o.measured_s is None else f"{o.measured_s:.2f} s"
        met = {True: "met", False: "MISSED", None: "not measured"}[o.met]
        print(f"{name}: {measured} (target {o.target_s:g} s, {met})")
    for r in ev.reasons:
        print(f"reason: {r}")
    print(f"report: {paths['html']}")
    print(f"evidence: {paths['json']}")
    print("signed: " + (f"yes ({key})" if sealed.signed else
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


def cmd_report(args: argparse.Namespace) -> int:
    import json

    from harness import signing
    from reports.findings import add_to_sidecar
    from reports.render import rerender
    directory: Path = args.directory
    source = directory / "evidence.json"
    if not source.is_file():
        raise UsageError(f"{directory} has no evidence.json: not a drill folder")
    try:
        doc = json.loads(source.read_bytes())
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise UsageError(f"{source} is not JSON ({exc}): not a drill's evidence") from exc
    if not isinstance(doc, dict):
        raise UsageError(f"{source} is not a drill's evidence (not a JSON object)")
    if args.finding is not None or args.for_id is not None:
        fid = add_to_sidecar(directory, doc,
                             summary=args.finding, for_id=args.for_id, action=args.action,
                             owner=args.owner, due=args.due, status=args.status)
        print(f"finding {fid} recorded in {directory / 'findings.yaml'}")
    key = signing.resolve_key(args.signing_key, None)
    written = rerender(directory, signing_key=key, drop_signature=args.unsigned)
    for path in written.paths.values():
        print(path)
    print("signed: " + ("yes" if written.signed else "NO (unsigned)"))
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from harness import signing
    key_path = args.out.with_name(args.out.name + ".key")
    if args.if_missing and key_path.exists():
        print(f"key exists: {key_path}")
        return 0
    private, public = signing.keygen(args.out)
    print(f"private key: {private} (keep it secret; never commit it)")
    print(f"public key:  {public} (give it to whoever verifies evidence)")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from harness import signing
    directory: Path = args.directory
    if not directory.is_dir():
        raise UsageError(f"{directory} is not a directory")
    pub = args.public_key or (Path(os.environ[signing.PUBLIC_KEY_ENV])
                              if os.environ.get(signing.PUBLIC_KEY_ENV) else None)
    result = signing.verify(directory, pub)
    for line in result.lines():
        print(line)
    return result.exit_code


def cmd_history(args: argparse.Namespace) -> int:
    from harness import history
    from reports.index import write_index
    from reports.markdown import seconds
    tol = history.DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    delta = history.DEFAULT_MIN_DELTA_S if args.min_delta is None else args.min_delta
    try:
        rows = history.load(args.evidence_dir)
    except sqlite3.Error as exc:
        raise UsageError(f"{args.evidence_dir / history.HISTORY_FILE}: not a drill history "
                         f"database ({exc})") from exc
    if not rows:
        print(f"no drills recorded in {args.evidence_dir / history.HISTORY_FILE}")
        return 0
    regs = history.regressions(rows, tolerance=tol, min_delta_s=delta)
    flagged = {r.drill.drill_id for r in regs}
    for name, drills in sorted(history.series(rows).items()):
        print(name)
        for d in drills:
            mark = "  << RTO REGRESSION" if d.drill_id in flagged else ""
            print(f"  {d.started_utc[:19]}  {d.verdict:12}  RTO {seconds(d.rto_s):>12} "
                  f"/ {seconds(d.rto_target_s):<10} RPO {seconds(d.rpo_s):>12} "
                  f"/ {seconds(d.rpo_target_s):<10} {d.drill_id}{mark}")
    for r in regs:
        print(f"regression: {r.message}")
    print(f"index: {write_index(args.evidence_dir, rows, regs, tolerance=tol, min_delta_s=delta)}")
    newest = {drills[-1].drill_id for drills in history.series(rows).values()}
    return 1 if args.fail_on_regression and flagged & newest else 0


def cmd_recover(args: argparse.Namespace) -> int:
    from harness.context import Adapters
    from harness.lease import LeaseResolver
    from harness.recover import recover_all
    inventory = _inventory_for(args)
    adapters = Adapters(inventory, args.evidence_dir / ".work")
    resolver = LeaseResolver(inventory, adapters.s3, adapters.postgres, adapters.kube)
    outcomes = recover_all(inventory, adapters, resolver, args.evidence_dir, drill=args.drill,
                           dry_run=args.dry_run, progress=_progress)
    if not outcomes:
        print("no orphaned drills" + (f" with id {args.drill}" if args.drill else ""))
        return 0
    for o in outcomes:
        state = ("would be restored" if args.dry_run and o.verified else
                 "verified as found" if o.verified else
                 "NOT verified" if o.failures else "could not be fully recovered")
        print(f"{o.orphan.drill_id}: died at {o.orphan.phase}; {state}"
              + ("" if args.dry_run else f"; {o.closed}"))
    return max(o.exit_code for o in outcomes)


def cmd_scenarios() -> int:
    for name, cls in sorted(discover().items()):
        print(f"{name:22} variants: {', '.join(cls.variants):14} {cls.summary}")
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    from lab.stack import Lab, default_root
    root = args.dir or default_root()
    if args.lab_command == "up":
        t0 = time.monotonic()
        Lab(root, model_size=args.model_size).up(progress=_progress)
        print(f"lab up ({time.monotonic() - t0:.1f} s): {root}")
        return 0
    lab = Lab(root)
    if args.lab_command == "down":
        lab.down()
        print("lab down")
    elif args.lab_command == "status":
        if not lab.state_path.exists():
            print(f"no lab at {root}; `drillbook lab up` makes one")
            return 1
        all_up = True
        for part in lab.status():
            all_up &= part.running
            print(f"{part.name:16} {'running' if part.running else 'stopped':8} "
                  f"pid={part.pid or '-':<8} {part.detail}")
        orphans = _lab_leases(lab)
        return 0 if all_up and not orphans else 1
    elif args.lab_command == "env":
        print(lab.env_exports())
    elif args.lab_command == "backup":
        lab.backup(progress=_progress)
    elif args.lab_command == "destroy":
        lab.destroy()
        print(f"lab destroyed: {root}")
    return 0


def _lab_leases(lab: Any) -> int:
    """Print the drill leases on the lab (held and orphaned); 1 when a drill is orphaned."""
    from harness.lease import LeaseState
    try:
        leases = lab.leases()
    except DrillbookError as exc:
        print(f"{'leases':16} unknown   {exc}")
        return 1
    if not leases:
        print(f"{'leases':16} none      no drill holds any part of the lab")
    for f in leases:
        state = "ORPHAN" if f.state is LeaseState.ORPHAN else "held"
        print(f"{'lease':16} {state:8}  {f.describe()}")
    orphans = [f for f in leases if f.state is LeaseState.ORPHAN]
    if orphans:
        print(f"{len(orphans)} orphaned lease(s): a drill died and may have left its target "
              f"broken; run `drillbook recover`")
    return 1 if orphans else 0


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    # CI cancels jobs with SIGTERM: outside a drill (which holds it, see harness/signals.py)
    # treat it like Ctrl-C, so a command stops the way it does on Ctrl-C
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0), or a bad value (EXIT_USAGE, see _Parser)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "scenarios":
            return cmd_scenarios()
        if args.command == "drill":
            return cmd_drill(args)
        if args.command == "inventory":
            inv = load_inventory(args.path)
            print(f"{inv.path}: valid ({len(inv.targets)} targets, {len(inv.assets)} assets)")
            return 0
        if args.command == "report":
            return cmd_report(args)
        if args.command == "keygen":
            return cmd_keygen(args)
        if args.command == "verify":
            return cmd_verify(args)
        if args.command == "history":
            return cmd_history(args)
        if args.command == "recover":
            return cmd_recover(args)
        if args.command == "lab":
            return cmd_lab(args)
        if args.command == "gc":
            from harness.gc import cmd_gc
            return cmd_gc(args, _inventory_for(args))
    except (InventoryError, UsageError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except DrillbookError as exc:
        _err(str(exc))
        return Verdict.INCONCLUSIVE.exit_code if args.command in ("run", "drill", "recover") else 1
    except OSError as exc:
        if args.command in ("run", "drill"):
            raise  # the drill's own handling decides what an I/O error means there
        # a path the options named that cannot be read or written: usage, nothing was done
        _err(f"{exc.filename or args.command}: {exc.strerror or exc}")
        return EXIT_USAGE
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
