"""The ``drillbook`` command.

    drillbook run SCENARIO [--variant V] [--asset ID] [--inventory PATH]   run one drill
    drillbook drill --random-tier1 [--seed N]                             the quarterly drill
    drillbook scenarios                                                   list installed scenarios
    drillbook inventory check PATH                                        validate an inventory
    drillbook report DIR                                                  re-render a drill's report
    drillbook lab up|down|status|env|backup|destroy                       the embedded lab
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from harness.errors import DrillbookError, InventoryError, UsageError
from harness.inventory import Inventory, load_inventory
from harness.model import EXIT_INTERRUPTED, EXIT_USAGE, Verdict
from harness.runner import DrillRequest, DrillResult, run_drill
from harness.scenario import discover, get_scenario

EXIT_CODES = f"""exit codes:
  0  PASS          every objective met (RTO, RPO, integrity, golden outputs)
  1  FAIL          an objective was missed, or recovery did not really restore the asset
  2  INCONCLUSIVE  a check could not run (target unreachable, no restore point, tool missing,
                   guard refused); never a pass
  {EXIT_USAGE}  usage error     bad options, unknown scenario, malformed inventory; nothing ran
  {EXIT_INTERRUPTED}  interrupted   Ctrl-C; revert ran before exit"""


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
    run.add_argument("scenario", help="scenario name (see `drillbook scenarios`)")
    run.add_argument("--variant", help="scenario variant (default: the scenario's first)")
    run.add_argument("--asset", help="asset id from the inventory (default: the only asset the "
                                     "scenario fits)")
    run.add_argument("--inventory", type=Path,
                     help="site inventory YAML (default: $DRILLBOOK_INVENTORY, else the lab's)")
    run.add_argument("--evidence-dir", type=Path, default=Path("evidence"),
                     help="where drill folders are written (default: ./evidence)")
    run.add_argument("--dry-run", action="store_true",
                     help="preflight and baseline only: prove the drill could run, break nothing "
                          "(verdict INCONCLUSIVE, since nothing was recovered)")
    run.add_argument("--quiet", action="store_true", help="print only the summary")

    sub.add_parser("scenarios", help="list installed scenarios")

    drl = sub.add_parser("drill", help="the quarterly drill: a random Tier 1 asset, end to end",
                         epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    drl.add_argument("--random-tier1", action="store_true", required=True,
                     help="pick a random Tier 1 asset and a scenario that fits its kind")
    drl.add_argument("--seed", type=int, help="seed for the pick (default: random; recorded)")
    drl.add_argument("--inventory", type=Path, help="site inventory YAML (default as for run)")
    drl.add_argument("--evidence-dir", type=Path, default=Path("evidence"))
    drl.add_argument("--quiet", action="store_true", help="print only the summary")

    inv = sub.add_parser("inventory", help="inventory tools")
    inv_sub = inv.add_subparsers(dest="inventory_command", required=True, parser_class=_Parser)
    check = inv_sub.add_parser("check", help="validate an inventory file; exit 0 if valid")
    check.add_argument("path", type=Path)

    rep = sub.add_parser("report", help="re-render report.html from a drill's evidence.json")
    rep.add_argument("directory", type=Path)

    lab = sub.add_parser("lab", help="the embedded lab on 127.0.0.1",
                         description="The embedded lab: Ceph RGW, restic, an inference node, on "
                                     "127.0.0.1, rooted in --dir (default $DRILLBOOK_LAB_DIR or "
                                     "./.lab).")
    lab.add_argument("--dir", type=Path, help="lab directory")
    lab_sub = lab.add_subparsers(dest="lab_command", required=True, parser_class=_Parser)
    up = lab_sub.add_parser("up", help="bring the lab up (idempotent; restarts what stopped)")
    up.add_argument("--model-size", default="8MiB",
                    help="size of the generated model on first start, e.g. 8MiB, 512MiB, 2GiB")
    lab_sub.add_parser("down", help="stop every lab process (data stays)")
    lab_sub.add_parser("status", help="show each part of the lab")
    lab_sub.add_parser("env", help="print shell exports for the AWS CLI / boto3 / restic")
    lab_sub.add_parser("backup", help="take a restic backup of the models bucket now")
    lab_sub.add_parser("destroy", help="stop the lab and delete its directory")
    return p


def parse_size(text: str) -> int:
    units = {"kib": 1024, "mib": 1024**2, "gib": 1024**3, "b": 1}
    low = text.strip().lower()
    for unit, mult in units.items():
        if low.endswith(unit):
            try:
                return int(float(low[: -len(unit)]) * mult)
            except ValueError:
                break
    raise UsageError(f"size {text!r} not understood; use e.g. 8MiB or 2GiB")


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
    req = DrillRequest(cls, args.variant or cls.variants[0], asset_id, args.evidence_dir,
                       dry_run=args.dry_run)
    result = run_drill(inventory, req, progress=(lambda m: None) if args.quiet else _progress)
    return _summarise(result)


def cmd_drill(args: argparse.Namespace) -> int:
    from scenarios.random_tier1 import run_random_tier1
    sel, result = run_random_tier1(_inventory_for(args), args.evidence_dir, seed=args.seed,
                                   progress=(lambda m: None) if args.quiet else _progress)
    print(f"seed: {sel.seed} scenario: {sel.scenario} variant: {sel.variant} asset: {sel.asset}")
    return _summarise(result)


def _summarise(result: DrillResult) -> int:
    from reports.render import write_evidence
    paths = write_evidence(result.evidence, result.directory)
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
    if result.interrupted:
        return EXIT_INTERRUPTED
    return ev.verdict.exit_code


def cmd_scenarios() -> int:
    for name, cls in sorted(discover().items()):
        print(f"{name:22} variants: {', '.join(cls.variants):14} {cls.summary}")
    return 0


def cmd_lab(args: argparse.Namespace) -> int:
    from lab.stack import Lab, default_root
    root = args.dir or default_root()
    if args.lab_command == "up":
        t0 = time.monotonic()
        Lab(root, model_size=parse_size(args.model_size)).up(progress=_progress)
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
        return 0 if all_up else 1
    elif args.lab_command == "env":
        print(lab.env_exports())
    elif args.lab_command == "backup":
        lab.backup(progress=_progress)
    elif args.lab_command == "destroy":
        lab.destroy()
        print(f"lab destroyed: {root}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
            from reports.render import rerender
            print(rerender(args.directory))
            return 0
        if args.command == "lab":
            return cmd_lab(args)
    except (InventoryError, UsageError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except DrillbookError as exc:
        _err(str(exc))
        return Verdict.INCONCLUSIVE.exit_code if args.command in ("run", "drill") else 1
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
