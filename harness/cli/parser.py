"""The ``drillbook`` command line: the parser, its exit codes and its messages.

Every value is typed while parsing (harness/cli_args.py), so a bad one exits 3 before any
command runs; argparse's own errors exit 3 too (2 is INCONCLUSIVE here).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from harness import cli_args as a
from harness.errors import UsageError
from harness.model import EXIT_INTERRUPTED, EXIT_USAGE

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


def err(msg: str) -> None:
    print(f"drillbook: {msg}", file=sys.stderr, flush=True)


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _Parser(argparse.ArgumentParser):
    """argparse, but bad usage exits with drillbook's usage code instead of argparse's 2
    (2 is INCONCLUSIVE here)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        err(message)
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
    run.add_argument("scenario", type=a.name,
                     help="scenario name (see `drillbook scenarios`); gpu-node-loss and "
                          "inference-site-loss have one implementation per platform, chosen "
                          "by the asset (kind kube-inference-service: the Kubernetes cluster; "
                          "inference-service: the process fleet) and the variant")
    run.add_argument("--variant", type=a.name,
                     help="scenario variant (default: the scenario's first)")
    run.add_argument("--asset", type=a.name, help="asset id from the inventory (default: the "
                                                  "only asset the scenario fits)")
    run.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                     type=a.assignment, help="a scenario parameter (repeatable; `drillbook "
                                             "scenarios` lists them); beats the inventory's "
                                             "drills: and the default")
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

