"""An asset's ``drills:`` field: per-scenario settings, today the scenario's parameters.

    assets:
      - id: registry
        ...
        drills:
          registry-alias-drift: {params: {alias: champion, wrong_version: "1"}}

The loader checks the shape (scenario names, parameter names, scalar values) and keeps each
value's line; whether a value fits the scenario's declaration is checked when that scenario
runs (harness/params.py), with the same file, line and field, so an inventory never has to
import scenarios to load.
"""

from __future__ import annotations

import math
from typing import Any

from harness.inventory.fields import Reader, kind_of
from harness.inventory.model import AssetDrill, DrillParam
from harness.inventory.source import Path_, dotted

FIELD = "drills"


def drills(raw: Any, p: Path_, r: Reader) -> tuple[AssetDrill, ...]:
    """The ``drills`` field of the asset at ``p`` (absent: no settings)."""
    if raw is None:
        return ()
    path = p + (FIELD,)
    out = []
    for scenario, entry in r.mapping(raw, path).items():
        here = path + (str(scenario),)
        r.check_name(scenario, here, "a scenario name")
        settings = r.mapping(entry, here) if entry is not None else {}
        r.known(settings, here, {"params"})
        params = settings.get("params")
        out.append(AssetDrill(str(scenario), _params(params, here + ("params",), r)))
    return tuple(out)


def _params(raw: Any, path: Path_, r: Reader) -> tuple[DrillParam, ...]:
    if raw is None:
        return ()
    out = []
    for name, value in r.mapping(raw, path).items():
        here = path + (str(name),)
        r.check_name(name, here, "a parameter name")
        if isinstance(value, float) and not math.isfinite(value):
            raise r.fail(here, f"must be a finite number (got {value!r})")
        if not isinstance(value, (str, int, float, bool)):
            raise r.fail(here, f"must be a single value: text, a number or true/false "
                               f"(got {kind_of(value)})")
        out.append(DrillParam(str(name), value, r.line(here), dotted(here)))
    return tuple(out)
