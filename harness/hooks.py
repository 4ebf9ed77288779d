"""Drill lifecycle hooks a site can observe, through pluggy (as pytest does).

A site's package declares a plug-in module in the ``drillbook.hooks`` entry-point group::

    [project.entry-points."drillbook.hooks"]
    pager = "mysite.drill_pager"

and implements any of the hooks below with :data:`hookimpl`::

    from harness.hooks import hookimpl

    @hookimpl
    def drillbook_verdict(evidence):
        page_if_failed(evidence.drill_id, evidence.verdict.value, evidence.reasons)

The runner calls them in this order: :meth:`DrillHooks.drillbook_drill_started`, then
:meth:`~DrillHooks.drillbook_phase_started` at each phase, then, once the evidence is sealed,
:meth:`~DrillHooks.drillbook_objective` for each judged objective and
:meth:`~DrillHooks.drillbook_verdict` once.

Hooks observe; they never decide. An exception in a site's hook does not change the verdict,
and is never silent: raised during the drill, it becomes a deviation finding in the evidence
(with the traceback in the journal); raised by the objective or verdict hooks, after the evidence
is sealed, it is printed with the drill's progress and returned in ``DrillResult.hook_errors``.
A plug-in whose hooks do not match these specifications fails when the plug-ins are loaded
(``check_pending``), before any drill runs.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Callable
from typing import Any

import pluggy

from harness.model import Evidence, ObjectiveResult

PROJECT = "drillbook"
ENTRY_POINT_GROUP = "drillbook.hooks"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class DrillHooks:
    """The hook specifications (a plug-in implements any subset, with the same argument names
    or fewer)."""

    @hookspec
    def drillbook_drill_started(self, drill_id: str, scenario: str, variant: str, asset: str,
                                site: str) -> None:
        """A drill passed its request checks and starts (nothing is leased or touched yet)."""

    @hookspec
    def drillbook_phase_started(self, drill_id: str, phase: str) -> None:
        """The drill enters ``phase`` (preflight, baseline, inject, ..., evidence)."""

    @hookspec
    def drillbook_objective(self, drill_id: str, objective: ObjectiveResult) -> None:
        """One objective as judged for the evidence (RTO, RPO, integrity, smoke, SLOs, ...)."""

    @hookspec
    def drillbook_verdict(self, evidence: Evidence) -> None:
        """The drill's evidence, sealed: its verdict, reasons and every figure."""


def build_manager() -> pluggy.PluginManager:
    """A hook manager with the specifications and every plug-in installed in the
    ``drillbook.hooks`` entry-point group; a plug-in that does not match them raises
    ``pluggy.PluginValidationError`` here."""
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(DrillHooks)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    pm.check_pending()
    return pm


@functools.cache
def manager() -> pluggy.PluginManager:
    """The process's hook manager (the installed plug-ins are read once per process)."""
    return build_manager()


#: gets what a failed hook said (one line) and its traceback
Report = Callable[[str, str], None]


def call(name: str, report: Report, **kwargs: Any) -> list[str]:
    """Call hook ``name`` on every plug-in; each plug-in that raises is reported through
    ``report`` and the others are still called (pluggy's own call would stop at the first
    exception). Returns what was reported."""
    caller = getattr(manager().hook, name)
    errors: list[str] = []
    for impl in caller.get_hookimpls():
        try:
            impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
        except Exception as exc:  # noqa: BLE001 - a site's plug-in: reported, never fatal
            text = (f"site hook {impl.plugin_name}.{name} raised {type(exc).__name__}: {exc} "
                    f"(observers do not change the verdict)")
            errors.append(text)
            report(text, traceback.format_exc())
    return errors
