"""``drillbook --help``, each subcommand's ``--help`` and a usage error must not import what only
running a command needs (the S3, Kubernetes and PostgreSQL clients, the inventory's schema
checker, the drill session and engine, the renderers, the lab): those took over a second to
import, paid by every start of the command and every test that runs it as a process.

One fresh interpreter does it all (a subprocess costs CPU, and the suite runs on 2 cores)."""

from __future__ import annotations

import json
import subprocess
import sys

#: imported by a command when it runs, never to build the parser, print help or refuse a value
HEAVY = (
    "boto3", "botocore", "s3transfer", "kubernetes", "psycopg", "jinja2", "jsonschema", "yaml",
    "pluggy", "urllib3", "requests", "cryptography",
    "harness.session", "harness.runner", "harness.context", "harness.lease", "harness.inventory",
    "harness.provenance", "harness.targets", "harness.cli.drills", "harness.cli.tools",
    "lab", "reports", "scenarios",
)

#: usage errors that are caught while parsing (exit 3 before any command module is imported)
USAGE_ERRORS = (
    [],
    ["no-such-subcommand"],
    ["history", "--tolerance=-5"],
    ["lab", "up", "--model-size", "1XB"],
    ["run", "artifact-deletion", "--evidence-dir", "/etc/passwd"],
)

_CHILD = """
import argparse, contextlib, importlib.util, io, json, sys

from harness import cli

heavy, usage_errors = json.loads(sys.argv[1])

def leaves(parser, path=()):
    yield path
    for sub in [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]:
        for name, child in sub.choices.items():
            yield from leaves(child, path + (name,))

codes = {}
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    for path in leaves(cli.build_parser()):
        codes[" ".join((*path, "--help"))] = cli.main([*path, "--help"])
    for argv in usage_errors:
        codes[" ".join(argv) or "(nothing)"] = cli.main(argv)
# a name that is not installed would pass the check below for the wrong reason
missing = [m for m in heavy if importlib.util.find_spec(m) is None]
loaded = [h for h in heavy if any(m == h or m.startswith(h + ".") for m in sys.modules)]
print(json.dumps({"codes": codes, "missing": missing, "loaded": loaded,
                  "help_chars": len(out.getvalue()), "usage_lines": err.getvalue().count("\\n")}))
"""


def test_help_and_usage_errors_import_no_command_dependencies() -> None:
    proc = subprocess.run([sys.executable, "-c", _CHILD, json.dumps([HEAVY, USAGE_ERRORS])],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    codes: dict[str, int] = result["codes"]
    helps = {k: v for k, v in codes.items() if k.endswith("--help")}
    assert {"--help", "run --help", "gc --help", "lab up --help", "inventory check --help",
            "verify --help"} <= set(helps), sorted(helps)
    assert set(helps.values()) == {0}, helps
    assert [v for k, v in codes.items() if k not in helps] == [3] * len(USAGE_ERRORS), codes
    assert result["help_chars"] > 5000 and result["usage_lines"] >= 2 * len(USAGE_ERRORS)
    assert result["missing"] == [], "not installed (fix HEAVY): " + ", ".join(result["missing"])
    assert result["loaded"] == [], "imported while parsing: " + ", ".join(result["loaded"])
