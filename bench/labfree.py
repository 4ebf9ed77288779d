"""How long do the lab-free tests take, run as `make test` runs them, next to a plain pytest?

Issue 9 asks for the lab-free part of the suite in under a minute. This runs it twice in one
go, each from a clean compiled-module cache (as a fresh clone in CI has it):

- make_test: the Makefile's way: modules compiled once, then pytest with its plugins named
  (``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`` and ``-p ...``), bytecode cached, on every core;
- plain: ``pytest -m "not lab" -n auto`` with every installed plugin autoloaded and this
  machine's ``PYTHONDONTWRITEBYTECODE=1`` left as it is.

    .venv/bin/python bench/labfree.py

Wall time of the whole command (not pytest's own figure), and CPU of it and its workers. The
last line is exactly::

    labfree: make_test=<s> plain=<s> ratio=<x> budget=60

Timings on a shared machine are noisy: compare the two within one run.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
PACKAGES = ["harness", "lab", "scenarios", "reports"]


def plugins() -> list[str]:
    """The -p options of the Makefile's PYTEST (one place says which plugins the suite uses)."""
    text = (ROOT / "Makefile").read_text()
    block = text.split("PYTEST :=", 1)[1].split("\n\n", 1)[0]
    return [arg for name in re.findall(r"-p (\S+)", block) for arg in ("-p", name)]


def clear_caches() -> None:
    for d in [ROOT / p for p in [*PACKAGES, "tests"]]:
        for cache in d.rglob("__pycache__"):
            shutil.rmtree(cache, ignore_errors=True)
    for pyc in (ROOT / ".venv").rglob("*-pytest-*.pyc"):  # pytest's rewritten plug-in modules
        pyc.unlink(missing_ok=True)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall s, CPU s of the command and its children, pytest's summary line)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    summary = (proc.stdout.strip().splitlines() or ["(no output)"])[-1]
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])}... failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    return wall, cpu, summary


def main() -> None:
    base = {**os.environ}
    pytest = [PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not lab",
              "-n", "auto"]

    clear_caches()
    env = {**base, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONDONTWRITEBYTECODE": ""}
    t0 = time.monotonic()
    compile_wall, compile_cpu, _ = timed([PYTHON, "-m", "compileall", "-q", *PACKAGES], env)
    wall, cpu, summary = timed(pytest[:3] + plugins() + pytest[3:], env)
    make_test = time.monotonic() - t0
    print(f"make test's way: {make_test:.2f} s wall (compile {compile_wall:.2f} s, pytest "
          f"{wall:.2f} s), {compile_cpu + cpu:.1f} CPU-s; {summary}")

    clear_caches()
    plain_env = {**base, "PYTHONDONTWRITEBYTECODE": "1"}
    plain_env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    plain, plain_cpu, summary = timed(pytest, plain_env)
    print(f"plain pytest:    {plain:.2f} s wall, {plain_cpu:.1f} CPU-s; {summary}")
    print(f"load average (1, 5, 15 min) at the end: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    print(f"labfree: make_test={make_test:.2f} plain={plain:.2f} "
          f"ratio={make_test / plain:.2f} budget=60")


if __name__ == "__main__":
    main()
