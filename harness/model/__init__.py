"""The drill's typed record: verdicts, journal events, runbook steps, integrity checks, results,
sections, objectives and evidence.

Everything a report shows comes from these frozen dataclasses. RTO and RPO are derived from
recorded events (:func:`measure_rto`, :func:`measure_rpo`), never typed in, so a number in the
evidence is always one the clock measured. The package is split along its seams; every name is
importable from ``harness.model`` itself:

    base           verdicts, exit codes, phases, outcomes, UTC timestamps, JSON reading helpers
    records        journal events, timed steps, integrity checks, timeline entries
    rto / rpo      the RTO (service and verified figures) and the RPO, measured from events
    objectives     an objective against its target, the verified RTO, one judged objective
    results        typed smoke and SLO results
    sections       typed evidence sections: the registry, the generic fallback
    known_sections the sections the engine declares (interruption, load)
    audit          the auditor's record
    evidence       the evidence of one drill, to and from evidence.json
    codec          JSON for plain dataclasses (typed sections)
"""

from harness.model import known_sections as known_sections
from harness.model.audit import (
    AuditRecord,
    BaselineFact,
    CorrectiveAction,
    Exercise,
    Finding,
    Participant,
    RunbookVersion,
    Scope,
    ScopeAsset,
    ScopeSystem,
)
from harness.model.base import (
    EVIDENCE_FORMAT,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    EvidenceFormatError,
    Outcome,
    Phase,
    Scalar,
    Verdict,
    iso,
    parse_iso,
    utc_now,
)
from harness.model.evidence import Evidence
from harness.model.known_sections import InterruptionSection, LoadSection
from harness.model.objectives import Objective, ObjectiveKind, ObjectiveResult, VerifiedRto
from harness.model.records import (
    Event,
    HostCheck,
    IntegrityCheck,
    StepRecord,
    TimelineEntry,
    event_by_name,
)
from harness.model.results import SloResult, SmokeResult
from harness.model.rpo import (
    RESTORE_POINT_CLOCK_TOLERANCE_S,
    RestorePoint,
    RpoDefinition,
    RpoError,
    RpoMeasurement,
    compute_rpo,
    measure_rpo,
)
from harness.model.rto import (
    SERVICE_RECOVERED,
    RtoDefinition,
    RtoError,
    RtoMeasurement,
    compute_rto,
    compute_service_rto,
    measure_rto,
    rto_breakdown,
)
from harness.model.sections import (
    SECTION_TYPES,
    GenericSection,
    Section,
    TypedSection,
    register_section,
    section_from_json,
)

__all__ = [
    "EVIDENCE_FORMAT", "EXIT_INTERRUPTED", "EXIT_USAGE", "RESTORE_POINT_CLOCK_TOLERANCE_S",
    "SECTION_TYPES", "SERVICE_RECOVERED", "AuditRecord", "BaselineFact", "CorrectiveAction",
    "Event", "Evidence", "EvidenceFormatError", "Exercise", "Finding", "GenericSection",
    "HostCheck", "IntegrityCheck", "InterruptionSection", "LoadSection", "Objective", "ObjectiveKind",
    "ObjectiveResult", "Outcome", "Participant", "Phase", "RestorePoint", "RpoDefinition",
    "RpoError", "RpoMeasurement", "RtoDefinition", "RtoError", "RtoMeasurement",
    "RunbookVersion", "Scalar", "Scope", "ScopeAsset", "ScopeSystem", "Section", "SloResult",
    "SmokeResult", "StepRecord", "TimelineEntry", "TypedSection", "Verdict", "VerifiedRto",
    "compute_rpo", "compute_rto", "compute_service_rto", "event_by_name", "iso",
    "known_sections", "measure_rpo", "measure_rto", "parse_iso", "register_section",
    "rto_breakdown", "section_from_json", "utc_now",
]
