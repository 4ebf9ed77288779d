"""The README's "write your own scenario" example (examples/registry-alias), installed the way a
site's package is found: a distribution whose metadata declares a ``drillbook.scenarios`` entry
point. It runs in fresh processes (so discovery is drillbook's own, through importlib.metadata)
against the lab: ``drillbook run`` PASSes, and a sabotaged recovery run through the drill
session FAILs with the alias put back by revert. mypy --strict on it is `make typecheck`.

The venv has no ``wheel`` package for ``pip install -e`` to build with (and nothing may be
downloaded), so the test writes the distribution's metadata itself from the example's own
pyproject.toml: a ``*.dist-info`` folder with METADATA and entry_points.txt on the path, which
is what pip would leave behind; nothing else is faked."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lab.stack import Lab

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "registry-alias"

SABOTAGED = """
import sys
from pathlib import Path
from harness.inventory import load_inventory
from harness.scenario import get_scenario
from harness.session import DrillSession, EvidenceWriter

drills = DrillSession(load_inventory(sys.argv[1]), Path(sys.argv[2]), sink=EvidenceWriter(),
                      progress=lambda m: None)
result = drills.run_one(get_scenario("registry-alias-drift"), cli_params={"alias": "champion"},
                        overrides={"repoint-alias": lambda ctx, original: None})
print(result.evidence.verdict.value, result.evidence.reverted, *result.evidence.reasons)
"""


def install(site: Path) -> dict[str, str]:
    """The example's distribution metadata in ``site``; the environment that sees it."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {project['name']}\n"
                                   f"Version: {project['version']}\n")
    points = project["entry-points"]["drillbook.scenarios"]
    (info / "entry_points.txt").write_text(
        "[drillbook.scenarios]\n" + "".join(f"{k} = {v}\n" for k, v in points.items()))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(EXAMPLE), env.get("PYTHONPATH", "")])
    env.pop("DRILLBOOK_SIGNING_KEY", None)
    return env


def drillbook(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], capture_output=True,
                          text=True, env=env, timeout=600, check=False)


@pytest.mark.lab
def test_the_guide_example_is_found_and_runs_against_the_lab(lab: Lab, tmp_path: Path) -> None:
    env = install(tmp_path / "site")
    listed = drillbook(env, "scenarios")
    assert "registry-alias-drift" in listed.stdout and "--param alias" in listed.stdout, listed

    ran = drillbook(env, "run", "registry-alias-drift", "--inventory", str(lab.inventory_path),
                    "--evidence-dir", str(tmp_path / "ev"), "--param", "alias=champion",
                    "--quiet")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "verdict: PASS" in ran.stdout and "params: model='lab-mlp' (default), " \
        "alias='champion' (command line)" in ran.stdout

    sabotaged = subprocess.run([sys.executable, "-c", SABOTAGED, str(lab.inventory_path),
                                str(tmp_path / "ev2")], capture_output=True, text=True, env=env,
                               timeout=600, check=False)
    assert sabotaged.returncode == 0, sabotaged.stderr
    verdict, reverted, _ = sabotaged.stdout.split(" ", 2)
    assert (verdict, reverted) == ("FAIL", "True"), sabotaged.stdout
    assert "alias -> version 1" in sabotaged.stdout  # the fault stayed until revert

    again = drillbook(env, "run", "registry-alias-drift", "--inventory", str(lab.inventory_path),
                      "--evidence-dir", str(tmp_path / "ev3"), "--quiet")
    assert again.returncode == 0, again.stdout  # revert left the alias as found


def test_the_readme_shows_the_example_as_it_is() -> None:
    readme = (EXAMPLE.parent.parent / "README.md").read_text()
    guide = readme.split("## Write your own scenario", 1)[1]
    shown = guide.split("```python\n", 1)[1].split("```", 1)[0]
    code = (EXAMPLE / "drillbook_registry_alias" / "__init__.py").read_text()
    assert shown == code
    assert len(code.splitlines()) <= 65 and len([x for x in code.splitlines() if x]) <= 50
