"""Findings and corrective actions filled in after the drill: the ``findings.yaml`` sidecar.

``evidence.json`` is the record the drill wrote (and signed); it is never edited. What the team
decides afterwards (a corrective action with an owner and a due date for a finding, or a finding
of their own) goes into ``findings.yaml`` beside it, by hand or with ``drillbook report DIR
--finding ...``. Every render merges the sidecar into the findings it shows, marking team entries
as such; the sidecar is an evidence file like the others, so SHA256SUMS and the signature cover it
once the report is re-rendered with the key.

    findings:
      - id: F1                      # a finding of the drill: add its corrective action
        corrective_action: {action: "alert on restic snapshot age", owner: ana, due: 2026-03-31}
      - id: T1                      # the team's own finding
        severity: observation
        summary: "the runbook's redeploy step needs the on-call's SSH key"
"""

from __future__ import annotations

import copy
import dataclasses
import re
from pathlib import Path
from typing import Any

import yaml

from harness.errors import UsageError
from harness.model import CorrectiveAction, Evidence, Finding

SIDECAR = "findings.yaml"
SEVERITIES = ("fail", "inconclusive", "deviation", "observation")
STATUSES = ("open", "in-progress", "done", "accepted-risk")
_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
_HEADER = ("# Findings and corrective actions for this drill, merged into the report by\n"
           "# `drillbook report DIR` (evidence.json itself is never edited).\n")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if hasattr(value, "isoformat"):  # YAML reads 2026-03-31 as a date
        return str(value.isoformat())
    return str(value).strip() or None


def load_sidecar(directory: Path) -> list[dict[str, Any]]:
    """The sidecar's entries, validated; [] when there is none."""
    path = directory / SIDECAR
    if not path.exists():
        return []
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("findings", []), list):
        raise UsageError(f"{path}: must be a mapping with a 'findings' list")
    out = []
    for i, raw in enumerate(doc.get("findings") or []):
        where = f"{path}: findings[{i}]"
        if not isinstance(raw, dict):
            raise UsageError(f"{where}: must be a mapping")
        unknown = set(raw) - {"id", "severity", "summary", "corrective_action"}
        if unknown:
            raise UsageError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        fid = _text(raw.get("id"))
        if fid is None or not _ID.match(fid):
            raise UsageError(f"{where}.id: required, letters, digits, '.', '_' or '-'")
        entry: dict[str, Any] = {"id": fid}
        if raw.get("summary") is not None:
            entry["summary"] = _text(raw["summary"])
        severity = _text(raw.get("severity")) or "observation"
        if severity not in SEVERITIES:
            raise UsageError(f"{where}.severity: one of {', '.join(SEVERITIES)}")
        entry["severity"] = severity
        ca = raw.get("corrective_action")
        if ca is not None:
            if not isinstance(ca, dict) or not _text(ca.get("action")):
                raise UsageError(f"{where}.corrective_action: a mapping with at least 'action'")
            unknown = set(ca) - {"action", "owner", "due", "status"}
            if unknown:
                raise UsageError(f"{where}.corrective_action: unknown field(s) "
                                 f"{', '.join(sorted(unknown))}")
            status = _text(ca.get("status")) or "open"
            if status not in STATUSES:
                raise UsageError(f"{where}.corrective_action.status: one of {', '.join(STATUSES)}")
            entry["corrective_action"] = {"action": _text(ca["action"]),
                                          "owner": _text(ca.get("owner")),
                                          "due": _text(ca.get("due")), "status": status}
        out.append(entry)
    return out


def apply_sidecar(doc: dict[str, Any], entries: list[dict[str, Any]]) -> dict[str, Any]:
    """A copy of the evidence document with the sidecar's findings merged in."""
    merged = copy.deepcopy(doc)
    findings: list[dict[str, Any]] = merged.setdefault("findings", [])
    by_id = {f["id"]: f for f in findings}
    for e in entries:
        existing = by_id.get(e["id"])
        if existing is None:
            if not e.get("summary"):
                raise UsageError(f"{SIDECAR}: finding {e['id']} is not one of the drill's "
                                 f"({', '.join(by_id) or 'none'}), so it needs a summary")
            existing = {"id": e["id"], "severity": e["severity"], "summary": e["summary"],
                        "source": "team", "corrective_action": None}
            findings.append(existing)
            by_id[e["id"]] = existing
        if "corrective_action" in e:
            existing["corrective_action"] = e["corrective_action"]
    return merged


def with_sidecar(ev: Evidence, entries: list[dict[str, Any]]) -> Evidence:
    """The evidence with the sidecar's findings and corrective actions merged in (team entries
    marked ``team``); the drill's own record is not changed."""
    if not entries or ev.audit is None:
        return ev
    findings = list(ev.audit.findings)
    index = {f.id: i for i, f in enumerate(findings)}
    for e in entries:
        i = index.get(e["id"])
        if i is None:
            if not e.get("summary"):
                raise UsageError(f"{SIDECAR}: finding {e['id']} is not one of the drill's "
                                 f"({', '.join(index) or 'none'}), so it needs a summary")
            index[e["id"]] = i = len(findings)
            findings.append(Finding(e["id"], e["severity"], e["summary"], "team"))
        ca = e.get("corrective_action")
        if ca is not None:
            findings[i] = dataclasses.replace(findings[i], corrective_action=CorrectiveAction(
                ca["action"], ca.get("owner"), ca.get("due"), ca.get("status", "open")))
    return ev.replace(audit=dataclasses.replace(ev.audit, findings=tuple(findings)))


def add_to_sidecar(directory: Path, doc: dict[str, Any], *, summary: str | None,
                   for_id: str | None, action: str | None, owner: str | None,
                   due: str | None, status: str = "open") -> str:
    """Record a team finding (``summary``) or a corrective action for an existing finding
    (``for_id``) in the sidecar; returns the finding's id."""
    entries = load_sidecar(directory)
    known = {f["id"] for f in apply_sidecar(doc, entries).get("findings", [])}
    if (summary is None) == (for_id is None):
        raise UsageError("give either --finding TEXT (a new finding) or --for ID (an existing one)")
    if for_id is not None and for_id not in known:
        raise UsageError(f"no finding {for_id!r} in this drill (findings: "
                         f"{', '.join(sorted(known)) or 'none'})")
    if for_id is not None and action is None:
        raise UsageError("--for needs --action (the corrective action to record)")
    if action is None and (owner is not None or due is not None):
        raise UsageError("--owner and --due belong to a corrective action: give --action too")
    if status not in STATUSES:
        raise UsageError(f"--status must be one of {', '.join(STATUSES)}")
    if for_id is None:
        n = 1
        while f"T{n}" in known:
            n += 1
        fid = f"T{n}"
        entry: dict[str, Any] = {"id": fid, "severity": "observation", "summary": summary}
        entries.append(entry)
    else:
        fid = for_id
        entry = next((e for e in entries if e["id"] == fid), {"id": fid})
        if entry not in entries:
            entries.append(entry)
    if action is not None:
        entry["corrective_action"] = {"action": action, "owner": owner, "due": due,
                                      "status": status}
    for e in entries:  # severity "observation" is the default: keep drill findings terse
        if e.get("severity") == "observation" and "summary" not in e:
            e.pop("severity")
    text = _HEADER + yaml.safe_dump({"findings": entries}, sort_keys=False, allow_unicode=True)
    (directory / SIDECAR).write_text(text, encoding="utf-8")
    return fid
