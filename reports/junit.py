"""``junit.xml``: one test case per objective, so a CI system shows which objective was missed.

FAIL becomes a ``<failure>``, INCONCLUSIVE an ``<error>`` (the check could not run: never shown
as passed, never as skipped). Built with ElementTree, which escapes every attribute and text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from reports.objectives import objective_results


def render_junit(doc: dict[str, Any]) -> str:
    results = objective_results(doc)
    failures = sum(1 for r in results if r.status == "FAIL")
    errors = sum(1 for r in results if r.status == "INCONCLUSIVE")
    suite_name = f"drill.{doc['scenario']}.{doc['variant']}.{doc['asset']}"
    elapsed = doc["rto"]["measured_s"]
    suites = ET.Element("testsuites", name="drillbook", tests=str(len(results)),
                        failures=str(failures), errors=str(errors))
    suite = ET.SubElement(suites, "testsuite", name=suite_name, tests=str(len(results)),
                          failures=str(failures), errors=str(errors), skipped="0",
                          timestamp=doc["started_utc"],
                          time=f"{elapsed:.3f}" if elapsed is not None else "0")
    props = ET.SubElement(suite, "properties")
    for key in ("drill_id", "scenario", "variant", "asset", "tier", "site", "verdict"):
        ET.SubElement(props, "property", name=key, value=str(doc[key]))
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
