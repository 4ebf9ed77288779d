"""The ``drillbook`` commands that do not run a drill: re-render reports, make and check keys,
the history of drills, recover orphaned drills, the embedded lab."""

from __future__ import annotations

import argparse
import os
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.cli.parser import progress
from harness.errors import DrillbookError, UsageError

if TYPE_CHECKING:
    from harness.inventory import Inventory


def load_inventory(path: Path | str) -> Inventory:
    """harness.inventory.load_inventory, imported on the first call: the inventory's YAML and
    schema checker cost about 0.3 s, which report, keygen, verify and history never need."""
    from harness.inventory import load_inventory as load
    return load(path)


def cmd_inventory(args: argparse.Namespace) -> int:
    """``drillbook inventory check PATH``."""
    inv = load_inventory(args.path)
    print(f"{inv.path}: valid ({len(inv.targets)} targets, {len(inv.assets)} assets)")
    return 0


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
    from harness.cli.drills import inventory_for
    from harness.context import Adapters
    from harness.lease import LeaseResolver
    from harness.recover import recover_all
    inventory = inventory_for(args)
    adapters = Adapters(inventory, args.evidence_dir / ".work")
    resolver = LeaseResolver(inventory, adapters.s3, adapters.postgres, adapters.kube)
    outcomes = recover_all(inventory, adapters, resolver, args.evidence_dir, drill=args.drill,
                           dry_run=args.dry_run, progress=progress)
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


def cmd_lab(args: argparse.Namespace) -> int:
    from lab.stack import Lab, default_root
    root = args.dir or default_root()
    if args.lab_command == "up":
        t0 = time.monotonic()
        Lab(root, model_size=args.model_size).up(progress=progress)
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
        lab.backup(progress=progress)
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
