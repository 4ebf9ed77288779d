"""Closing a dead drill's evidence after ``drillbook recover`` (harness/recover.py).

When the orphan's folder is on this host, its journal is read back (every line was fsynced as it
happened), the recovery is appended to it, and the folder gets the usual evidence set with
verdict INCONCLUSIVE, "harness died at PHASE", and a ``recovery`` section saying what was
restored and whether it was verified as found. Otherwise a recovery record is written next to
the lease, in the same store, where every driller of the site sees it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.context import Adapters, DrillContext
from harness.errors import DrillbookError
from harness.inventory import Inventory
from harness.journal import Clock, Journal
from harness.lease import RECOVERY_PREFIX, FoundLease
from harness.model import Event, IntegrityCheck, Outcome, Phase, StepRecord, parse_iso

if TYPE_CHECKING:
    from harness.recover import Outcome as Recovery


def close_evidence(inventory: Inventory, out: Recovery, leases: list[FoundLease]) -> str:
    """Write the orphan's evidence (or a recovery record); returns where it went."""
    o = out.orphan
    directory = o.evidence_dir
    local = directory is not None and (directory / "journal.jsonl").is_file() and \
        not (directory / "evidence.json").exists()
    if local and directory is not None:
        try:
            if o.asset in inventory.assets:
                return str(_write_folder(inventory, out, directory))
        except DrillbookError as exc:  # e.g. the scenario is not installed here
            out.inconclusive.append(f"could not write evidence in {directory}: {exc}")
        # at least close the journal, so the next recover does not find it again
        journal = Journal(directory / "journal.jsonl", Clock())
        journal.note("orphan.recovered", **out.to_json())
        journal.note("verdict", verdict="INCONCLUSIVE",
                     reasons=[f"harness died at {o.phase}; see orphan.recovered"])
        journal.close()
    doc = json.dumps({"format": "drillbook-recovery/1", "scenario": o.scenario,
                      "variant": o.variant, "asset": o.asset,
                      "evidence_dir": None if directory is None else str(directory),
                      **out.to_json()}, indent=1).encode()
    for found in leases[:1]:
        key = f"{RECOVERY_PREFIX}{o.drill_id}"
        if found.store.create(key, doc) is None:
            got = found.store.get(key)
            if got is not None:
                found.store.replace(key, doc, got[1])
        return f"recovery record {key} in {found.store.where}"
    if local:
        return f"journal in {directory} closed (no evidence could be built)"
    return "nowhere: the orphan has neither a local folder nor a lease"


def _load(journal: Journal) -> list[dict[str, Any]]:
    """Fill a journal's in-memory record from its file."""
    from harness.recover import read_journal
    lines = read_journal(journal.path)
    for r in lines:
        kind = r.get("type")
        if kind == "event":
            journal.events.append(Event(int(r["seq"]), str(r["event"]), Phase(r["phase"]),
                                        parse_iso(r["utc"]), float(r["mono"]),
                                        dict(r.get("detail", {}))))
        elif kind == "step":
            journal.steps.append(StepRecord(str(r["name"]), Phase(r["phase"]),
                                            parse_iso(r["start"]), parse_iso(r["end"]),
                                            float(r["duration_s"]), Outcome(r["outcome"]),
                                            str(r.get("message", ""))))
        elif kind == "integrity":
            journal.integrity.append(IntegrityCheck(
                str(r["object"]), str(r["expected_sha256"]), r.get("actual_sha256"),
                bool(r["ok"]), Phase(r["phase"])))
    return lines


def _write_folder(inventory: Inventory, out: Recovery, directory: Path) -> Path:
    from harness import signing
    from harness.drill_evidence import build_evidence
    from harness.provenance import ExerciseInput
    from harness.runner import DrillRequest
    from harness.scenario import get_scenario, implementation
    from reports.render import write_evidence

    o = out.orphan
    clock = Clock()
    journal = Journal(directory / "journal.jsonl", clock)
    lines = _load(journal)
    head = next((r for r in lines if r.get("type") == "drill"), {})
    started = parse_iso(head["utc"]) if "utc" in head else clock.utc()
    asset = inventory.assets[o.asset]
    work_dir = directory.parent / ".work"
    ctx = DrillContext(drill_id=o.drill_id, inventory=inventory, asset=asset, variant=o.variant,
                       journal=journal, adapters=Adapters(inventory, work_dir), clock=clock,
                       work_dir=work_dir, progress=lambda m: None)
    try:
        ctx.phase = Phase(o.phase)
    except ValueError:
        ctx.phase = Phase.REVERT if o.phase == "revert-failed" else Phase.EVIDENCE
    journal.note("orphan.recovered", **out.to_json())
    ctx.inconclusive(f"harness died at {o.phase} ({o.why}); `drillbook recover` "
                     + ("restored the target and verified it as found"
                        if out.verified else "could NOT verify the target as found"))
    for reason in out.failures + out.inconclusive:
        ctx.inconclusive(f"recover: {reason}")
    ctx.findings.reverted = out.verified
    ctx.findings.sections["recovery"] = out.to_json()
    # the implementation that ran: a name may have one per platform, the asset decides
    cls = implementation(inventory, get_scenario(o.scenario), o.asset, o.variant)
    req = DrillRequest(cls, o.variant, o.asset, directory.parent, exercise=ExerciseInput())
    try:
        scenario = cls(ctx)
        scenario.runbook()
    except Exception:  # noqa: BLE001 - a site's scenario may need state a dead drill never had
        scenario = None
    try:
        evidence = build_evidence(ctx, req, started, scenario=scenario)
        journal.note("verdict", verdict=evidence.verdict.value, reasons=list(evidence.reasons))
    finally:
        journal.close()
    write_evidence(evidence, directory,
                   signing_key=signing.resolve_key(None, inventory.evidence.signing_key))
    return directory
