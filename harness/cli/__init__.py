"""The ``drillbook`` command.

    drillbook run SCENARIO [--variant V] [--asset ID] [--param K=V] [--inventory PATH]  one drill
    drillbook drill --random-tier1 [--seed N]                             the quarterly drill
    drillbook scenarios                                                   list installed scenarios
    drillbook inventory check PATH                                        validate an inventory
    drillbook report DIR [--for ID --action ... | --finding ...]         re-render a drill's reports
    drillbook keygen [--out PREFIX]                                       make an ed25519 key pair
    drillbook verify DIR [--public-key PUB]                               check hashes and signature
    drillbook history [--evidence-dir DIR]                                RTO/RPO across drills
    drillbook recover [--drill ID] [--dry-run]                            restore dead drills' targets
    drillbook lab up|down|status|env|backup|destroy                       the embedded lab

    parser.py   options, their types and exit codes       drills.py   run, drill, scenarios
    tools.py    report, keygen, verify, history, recover, lab
"""

from __future__ import annotations

import argparse
import functools
import signal
from collections.abc import Callable, Sequence

from harness.cli.drills import cmd_drill, cmd_run, cmd_scenarios
from harness.cli.parser import EXIT_CODES, build_parser, err, parse_size
from harness.cli.tools import (
    cmd_history,
    cmd_inventory,
    cmd_keygen,
    cmd_lab,
    cmd_recover,
    cmd_report,
    cmd_verify,
)
from harness.errors import DrillbookError, InventoryError, UsageError
from harness.model import EXIT_INTERRUPTED, EXIT_USAGE, Verdict

__all__ = ["EXIT_CODES", "build_parser", "main", "parse_size"]


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    # CI cancels jobs with SIGTERM: outside a drill (which holds it, see harness/signals.py)
    # treat it like Ctrl-C, so a command stops the way it does on Ctrl-C
    raise KeyboardInterrupt


@functools.cache
def _parser() -> argparse.ArgumentParser:
    """Built once per process: argparse asks gettext for every help string it registers, which
    costs more than parsing (and a test session calls main() hundreds of times)."""
    return build_parser()


def _cmd_gc(args: argparse.Namespace) -> int:
    from harness.cli.drills import inventory_for
    from harness.gc import cmd_gc
    return cmd_gc(args, inventory_for(args))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0), or a bad value (EXIT_USAGE, see _Parser)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        commands: dict[str, Callable[[argparse.Namespace], int]] = {
            "run": cmd_run, "scenarios": cmd_scenarios, "drill": cmd_drill,
            "inventory": cmd_inventory, "report": cmd_report, "keygen": cmd_keygen,
            "verify": cmd_verify, "history": cmd_history, "recover": cmd_recover, "lab": cmd_lab,
            "gc": _cmd_gc}
        return commands[args.command](args)
    except (InventoryError, UsageError) as exc:
        err(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        err("interrupted")
        return EXIT_INTERRUPTED
    except DrillbookError as exc:
        err(str(exc))
        return Verdict.INCONCLUSIVE.exit_code if args.command in ("run", "drill", "recover") else 1
    except OSError as exc:
        if args.command in ("run", "drill"):
            raise  # the drill's own handling decides what an I/O error means there
        # a path the options named that cannot be read or written: usage, nothing was done
        err(f"{exc.filename or args.command}: {exc.strerror or exc}")
        return EXIT_USAGE
