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

Only the parser is imported up front: each command's module (and through it the session, the
adapters, boto3, kubernetes, psycopg, the renderers) is imported when that command runs, so
``--help`` and a usage error start in a fraction of the time.
"""

from __future__ import annotations

import argparse
import functools
import signal
from collections.abc import Callable, Sequence

from harness.cli.parser import EXIT_CODES, build_parser, err, parse_size
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


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """The handler of subcommand ``name``, its module imported only now (see the docstring)."""
    if name in ("run", "scenarios", "drill"):
        from harness.cli import drills
        return {"run": drills.cmd_run, "scenarios": drills.cmd_scenarios,
                "drill": drills.cmd_drill}[name]
    if name == "gc":
        return _cmd_gc
    from harness.cli import tools
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "inventory": tools.cmd_inventory, "report": tools.cmd_report, "keygen": tools.cmd_keygen,
        "verify": tools.cmd_verify, "history": tools.cmd_history, "recover": tools.cmd_recover,
        "lab": tools.cmd_lab}
    return commands[name]


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0), or a bad value (EXIT_USAGE, see _Parser)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    try:
        return _command(args.command)(args)
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
