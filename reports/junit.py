"""``junit.xml``: one test case per objective, so a CI system shows which objective was missed.

FAIL becomes a ``<failure>``, INCONCLUSIVE an ``<error>`` (the check could not run: never shown
as passed, never as skipped). Built with ElementTree, which escapes every attribute and text.
The RTO case's time is the service RTO (the figure the objective is judged on); the suite's
properties carry both RTO figures and the verification's duration.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.model import Evidence, iso
from reports.objectives import objective_results


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def render_junit(ev: Evidence) -> str:
    results = objective_results(ev)
    failures = sum(1 for r in results if r.status == "FAIL")
    errors = sum(1 for r in results if r.status == "INCONCLUSIVE")
    suite_name = f"drill.{ev.scenario}.{ev.variant}.{ev.asset}"
    elapsed = ev.rto.measured_s
    suites = ET.Element("testsuites", name="drillbook", tests=str(len(results)),
                        failures=str(failures), errors=str(errors))
    suite = ET.SubElement(suites, "testsuite", name=suite_name, tests=str(len(results)),
                          failures=str(failures), errors=str(errors), skipped="0",
                          timestamp=iso(ev.started),
                          time=f"{elapsed:.3f}" if elapsed is not None else "0")
    props = ET.SubElement(suite, "properties")
    verified = ev.rto_verified
    for key, value in (("drill_id", ev.drill_id), ("scenario", ev.scenario),
                       ("variant", ev.variant), ("asset", ev.asset), ("tier", str(ev.tier)),
                       ("site", ev.site), ("verdict", ev.verdict.value),
                       ("rto_service_s", _num(ev.rto.measured_s)),
                       ("rto_definition", ev.rto.definition or ""),
                       ("rto_verified_s", _num(None if verified is None else verified.measured_s)),
                       ("verification_s",
                        _num(None if verified is None else verified.verification_s))):
        ET.SubElement(props, "property", name=key, value=value)
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=suite_name, name=r.name,
                             time=f"{r.seconds:.3f}" if r.seconds is not None else "0")
        if r.status == "FAIL":
            ET.SubElement(case, "failure", message=r.message, type="ObjectiveMissed").text = \
                r.message
        elif r.status == "INCONCLUSIVE":
            ET.SubElement(case, "error", message=r.message, type="Inconclusive").text = r.message
        else:
            ET.SubElement(case, "system-out").text = r.message
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") \
        + "\n"
