"""Typed evidence without a lab: ``Evidence.from_json`` reads back exactly what ``to_json`` wrote
(real evidence from lab drills, and records generated from the model), typed sections and their
generic fallback, typed smoke and SLO results, and renderers that take the model."""

from __future__ import annotations

import json
import string
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import UsageError
from harness.model import (
    AuditRecord,
    BaselineFact,
    CorrectiveAction,
    Event,
    Evidence,
    EvidenceFormatError,
    Exercise,
    Finding,
    GenericSection,
    IntegrityCheck,
    InterruptionSection,
    LoadSection,
    Objective,
    ObjectiveKind,
    ObjectiveResult,
    Outcome,
    Participant,
    Phase,
    RestorePoint,
    RunbookVersion,
    Scope,
    ScopeAsset,
    ScopeSystem,
    SloResult,
    SmokeResult,
    StepRecord,
    TimelineEntry,
    TypedSection,
    Verdict,
    VerifiedRto,
    register_section,
    section_from_json,
)
from harness.verdict import Recorded, judge
from reports.junit import render_junit
from reports.markdown import render_markdown
from reports.render import render_html
from reports.validate import schema_errors

SAMPLES = sorted((Path(__file__).parent / "data" / "evidence").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


# -- real evidence from lab drills -------------------------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_real_evidence_reads_back_exactly_and_renders(path: Path) -> None:
    doc = _load(path)
    ev = Evidence.from_json(doc)
    assert ev.to_json() == doc
    again = Evidence.from_json(json.loads(json.dumps(ev.to_json())))
    assert again == ev
    html = render_html(ev)
    assert ev.drill_id in html and f'id="verdict">{ev.verdict.value}<' in html
    cases = ET.fromstring(render_junit(ev).split("\n", 1)[1]).iter("testcase")
    assert [c.get("name") for c in cases] == [o.name for o in ev.objectives] + ["verdict"]
    assert render_markdown(ev).startswith("### ")


def test_the_samples_cover_typed_generic_and_interruption_sections() -> None:
    kinds = {(name, type(s).__name__) for p in SAMPLES
             for name, s in Evidence.from_json(_load(p)).sections.items()}
    assert {("load", "LoadSection"), ("interruption", "InterruptionSection"),
            ("loss", "GenericSection"), ("kube", "GenericSection")} <= kinds


def test_a_fleet_drills_load_section_is_typed_and_drawn() -> None:
    ev = Evidence.from_json(_load(Path(__file__).parent / "data" / "evidence" /
                                  "gpu-node-loss.json"))
    load = ev.sections["load"]
    assert isinstance(load, LoadSection)
    assert load.slo.met is True and load.max_p95_ms == 150.0
    assert load.acceptance.met and load.timeline[0].requests > 0
    html = render_html(ev)
    assert "Service under load" in html and 'aria-label="availability and latency timeline"' in html
    assert 'id="section-load"' not in html  # drawn as the chart, not again as a table


def test_older_evidence_is_labelled_as_its_verified_rto() -> None:
    ev = Evidence.from_json(_load(SAMPLES[0]))
    assert ev.rto_verified is None  # written before the service RTO existed
    assert "RTO (verified)" in render_markdown(ev)
    assert "predates the service RTO" in render_html(ev)


# -- records generated from the model ----------------------------------------------------------

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
_text = st.text(string.ascii_letters + string.digits + " -_:/.", max_size=12)
_name = st.text(string.ascii_lowercase, min_size=1, max_size=8)
_secs = st.integers(0, 10**7).map(lambda n: n / 1000)  # exact after rounding to microseconds
_when = st.integers(0, 10**12).map(lambda us: T0 + timedelta(microseconds=us))
_scalar = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), _text,
                    st.floats(allow_nan=False, allow_infinity=False))
_json = st.recursive(_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(_name, inner, max_size=3)), max_leaves=8)
_sha = st.text("0123456789abcdef", min_size=64, max_size=64)


def _smoke() -> st.SearchStrategy[SmokeResult]:
    details = st.dictionaries(_name.filter(lambda k: k not in (
        "passed", "summary", "golden_inputs", "identical_outputs")), _scalar, max_size=3)
    return st.builds(SmokeResult, st.none() | st.booleans(), st.none() | _text,
                     st.none() | st.integers(0, 9), st.none() | st.integers(0, 9), details)


def _section() -> st.SearchStrategy[Any]:
    signal = st.fixed_dictionaries({"signal": _text, "phase": _text, "step": st.none() | _text,
                                    "utc": _text, "aborted": st.booleans()})
    interruption = st.builds(
        lambda s, sig: InterruptionSection.from_json({
            "signal": s, "phase": "runbook", "step": None, "utc": "2026-11-29T10:00:00+00:00",
            "stopped": "at once", "fault_injected": False, "target_as_found": None,
            "signals": sig}), _text, st.lists(signal, max_size=2))
    generic = st.dictionaries(_name, _json, max_size=4).map(GenericSection)
    return st.one_of(interruption, generic)


def _objective() -> st.SearchStrategy[ObjectiveResult]:
    return st.builds(ObjectiveResult, _name, st.sampled_from(ObjectiveKind),
                     st.sampled_from(Verdict), _text, st.none() | _secs, st.none() | _secs,
                     st.none() | _secs, st.none() | _secs)


def _audit() -> st.SearchStrategy[AuditRecord]:
    finding = st.builds(Finding, _name, st.sampled_from(["fail", "deviation"]), _text,
                        st.sampled_from(["drill", "team"]),
                        st.none() | st.builds(CorrectiveAction, _text, st.none() | _text,
                                              st.none() | _text, st.just("open")))
    return st.builds(
        AuditRecord,
        st.builds(Exercise, _text, _text, st.none() | _text, st.none() | _text, _text,
                  st.lists(st.builds(Participant, _text, _text), max_size=2).map(tuple),
                  st.none() | _text, st.dictionaries(_name, st.sampled_from(["cli", "inventory"]),
                                                     max_size=2)),
        st.builds(RunbookVersion, st.none() | _sha, st.none() | st.booleans(), _sha,
                  st.lists(_name, max_size=3).map(tuple), _text),
        st.builds(Scope, _text, st.lists(st.builds(ScopeSystem, _name, _name, _name, _text,
                                                   st.booleans()), max_size=2).map(tuple),
                  st.lists(st.builds(ScopeAsset, _name, st.integers(1, 3), _name,
                                     st.none() | _text, st.none() | _text,
                                     st.lists(_text, max_size=2).map(tuple),
                                     st.lists(_text, max_size=2).map(tuple)),
                           max_size=2).map(tuple), _text),
        _text, st.lists(st.builds(BaselineFact, _name, _when, st.dictionaries(
            _name, _scalar, max_size=2)), max_size=2).map(tuple),
        st.lists(_text, max_size=2).map(tuple), st.lists(finding, max_size=2).map(tuple),
        st.dictionaries(_name, _text, max_size=2), st.dictionaries(_name, _text, max_size=2))


def _evidence() -> st.SearchStrategy[Evidence]:
    objective = st.builds(Objective, st.none() | _secs, _secs.filter(bool), st.none() | st.booleans(),
                          st.none() | st.sampled_from(["service-recovered", "writes-lost"]),
                          st.none() | _text.filter(bool), st.none() | _text.filter(bool))
    step = st.builds(StepRecord, _name, st.sampled_from(Phase), _when, _when, _secs,
                     st.sampled_from(Outcome), _text)
    point = st.builds(lambda created, continuous, lost: RestorePoint(
        "restic-snapshot", "abc", created, "repo", 0, continuous, lost if continuous else None),
        _when, st.booleans(), st.none() | _when)
    return st.builds(
        Evidence, _name, _name, _name, _name, st.integers(1, 3), _text, st.sampled_from(Verdict),
        st.lists(_text, max_size=3).map(tuple), objective, objective, _when, _when,
        st.lists(st.builds(TimelineEntry, _name, _when, st.none() | _secs),
                 max_size=4).map(tuple),
        st.lists(step, max_size=3).map(tuple),
        st.lists(st.builds(IntegrityCheck, _text, _sha, st.none() | _sha, st.booleans(),
                           st.sampled_from(Phase)), max_size=2).map(tuple),
        st.none() | point, _smoke(), st.dictionaries(_name, _secs, max_size=3), st.booleans(),
        _text, st.dictionaries(_name, _text, max_size=2),
        st.dictionaries(st.sampled_from(["interruption", "loss", "kube", "site-own"]),
                        _section(), max_size=3),
        st.lists(_objective(), max_size=4).map(tuple), st.none() | _audit(),
        st.none() | st.builds(VerifiedRto, st.none() | _secs, st.none() | _secs))


@settings(max_examples=25, deadline=None)
@given(_evidence())
def test_any_evidence_survives_the_trip_through_json(ev: Evidence) -> None:
    doc = ev.to_json()
    back = Evidence.from_json(json.loads(json.dumps(doc)))
    assert back.to_json() == doc
    # an interruption section generated by hand under another name is kept generic, so compare
    # the records only where the generator's types are the reader's
    assert back.replace(sections={}) == ev.replace(sections={})
    assert {k: s.to_json() for k, s in back.sections.items()} == \
        {k: s.to_json() for k, s in ev.sections.items()}


# -- the reader refuses what it cannot represent -----------------------------------------------


def test_evidence_without_objectives_or_with_unknown_fields_is_refused() -> None:
    doc = _load(SAMPLES[0])
    with pytest.raises(UsageError, match="no objectives list"):
        Evidence.from_json({k: v for k, v in doc.items() if k != "objectives"})
    with pytest.raises(EvidenceFormatError, match="written_by_mars"):
        Evidence.from_json({**doc, "written_by_mars": []})
    with pytest.raises(EvidenceFormatError, match=r"host_checks\[0\]\.phase"):
        Evidence.from_json({**doc, "host_checks": [{"host": "h", "backend": "ssh",
                                                    "phase": "lunch", "check": "c",
                                                    "expected": "e", "found": "f", "ok": True}]})
    with pytest.raises(EvidenceFormatError, match=r"evidence\.tier: expected an integer"):
        Evidence.from_json({**doc, "tier": "1"})
    with pytest.raises(EvidenceFormatError, match=r"steps\[0\]\.start"):
        Evidence.from_json({**doc, "steps": [{**doc["steps"][0], "start": "yesterday"}]})


# -- typed sections ----------------------------------------------------------------------------


@register_section("unit-replication")
@dataclass(frozen=True)
class ReplicationSection(TypedSection):
    job: str
    canaries_written: int
    max_last_sync_age_s: float | None
    lag_curve: tuple[float, ...]
    slo_met: bool | None

    @property
    def slo(self) -> SloResult | None:
        return SloResult(self.slo_met, f"replica within 5 s: {self.max_last_sync_age_s}")


def test_a_typed_section_reads_back_as_its_type() -> None:
    sec = ReplicationSection("replicate", 12, 4.5, (0.5, 1.0, 4.5), True)
    doc = sec.to_json()
    assert doc == {"job": "replicate", "canaries_written": 12, "max_last_sync_age_s": 4.5,
                   "lag_curve": [0.5, 1.0, 4.5], "slo_met": True}
    assert section_from_json("unit-replication", json.loads(json.dumps(doc))) == sec
    assert sec["job"] == "replicate" and "lag_curve" in sec  # the read-only mapping view


def test_a_dict_that_does_not_fit_its_declared_type_is_kept_generic() -> None:
    odd = {"job": "replicate", "canaries": "twelve"}
    sec = section_from_json("unit-replication", odd)
    assert isinstance(sec, GenericSection) and sec.to_json() == odd
    # a known name with a wrong value type, too
    assert isinstance(section_from_json("unit-replication", {
        "job": 1, "canaries_written": 1, "max_last_sync_age_s": None, "lag_curve": [],
        "slo_met": None}), GenericSection)


def test_a_name_cannot_be_declared_twice_with_another_type() -> None:
    with pytest.raises(ValueError, match="already declared"):
        @register_section("unit-replication")
        @dataclass(frozen=True)
        class Other(TypedSection):
            job: str


def test_typed_and_generic_sections_judge_their_slos() -> None:
    rec = Recorded(events=[], integrity=[], smoke=SmokeResult(), reverted=True, failures=[],
                   inconclusive=[], sections={
                       "unit-replication": ReplicationSection("r", 1, 9.0, (), False),
                       "site-own": GenericSection({"slo": {"met": True, "summary": "ok"}}),
                       "no-slo": GenericSection({"slo": "fast"})})
    j = judge(Objective.evaluate(None, 60), Objective.evaluate(None, 60), rec)
    slos = {o.name: o.status for o in j.objectives if o.kind is ObjectiveKind.SLO}
    assert slos == {"slo:site-own": Verdict.PASS, "slo:unit-replication": Verdict.FAIL}


# -- smoke and SLO results ---------------------------------------------------------------------


@pytest.mark.parametrize("flat, passed, message", [
    ({"passed": True, "summary": "3 models answer"}, True, "3 models answer"),
    ({"golden_inputs": 4, "identical_outputs": 3, "endpoint": "http://x"}, False,
     "1 of 4 golden outputs differ"),
    ({"golden_inputs": 4, "identical_outputs": 4}, True, "4 of 4 golden outputs identical"),
    ({"golden": "not run: no golden inputs"}, None, "not run: no golden inputs"),
    ({}, None, "smoke test did not run"),
    # a declared key with a scenario's own type stays a detail, exactly as written
    ({"passed": "yes", "registry": 7}, None, "smoke test did not run"),
])
def test_smoke_results_are_typed_and_keep_their_shape(flat: dict[str, Any], passed: bool | None,
                                                      message: str) -> None:
    smoke = SmokeResult.from_json(flat)
    assert smoke.to_json() == flat and smoke.judged() == (passed, message)
    assert smoke.recorded is bool(flat)


def test_typed_smoke_constructors() -> None:
    assert SmokeResult.golden(8, 8, endpoint="u").to_json() == {
        "golden_inputs": 8, "identical_outputs": 8, "endpoint": "u"}
    assert SmokeResult.check(False, "registry empty").judged() == (False, "registry empty")
    assert SmokeResult.not_run("no endpoint").judged() == (None, "not run: no endpoint")


def test_an_slo_keeps_its_thresholds_and_refuses_a_non_boolean_verdict() -> None:
    doc = {"met": None, "summary": "not judged", "max_p95_ms": 150.0}
    assert SloResult.from_json(doc).to_json() == doc
    with pytest.raises(EvidenceFormatError, match="met"):
        SloResult.from_json({"met": "yes"})


# -- unknown sections render, never crash -----------------------------------------------------


def test_an_unknown_sites_section_renders_as_a_key_value_table() -> None:
    ev = Evidence.from_json(_load(SAMPLES[0]))
    odd = ev.replace(sections={**ev.sections, "site-thing": {
        "owner": "<b>ops</b>", "nested": {"a": [1, 2, 3]}, "rows": [{"x": 1}, {"y": None}]}})
    assert isinstance(odd.sections["site-thing"], GenericSection)  # a dict handed in is read
    html = render_html(odd)
    assert 'id="section-site-thing"' in html and "&lt;b&gt;ops&lt;/b&gt;" in html
    assert schema_errors(odd.to_json()) == []
    assert Evidence.from_json(odd.to_json()) == odd


def test_an_event_reads_back_exactly() -> None:
    ev = Event(3, "service.recovered", Phase.VERIFY, T0, 1234.5, {"at_utc": "x", "n": 1})
    assert Event.from_json(ev.to_json()) == ev


def test_a_load_section_without_the_optional_fields_is_still_typed_and_exact() -> None:
    kube = _load(Path(__file__).parent / "data" / "evidence" / "kube-gpu-node-loss.json")
    load = kube["sections"]["load"]
    sec = section_from_json("load", load)
    assert isinstance(sec, LoadSection) and sec.endpoint and sec.phases is None
    assert sec.to_json() == load
    # a null where the type writes nothing would not come back as written: kept generic
    assert isinstance(section_from_json("load", {**load, "phases": None}), GenericSection)


def test_a_section_renderer_that_fails_leaves_the_data_as_a_table() -> None:
    from reports import sections

    def broken(name: str, section: Any) -> Any:
        raise KeyError("max_p95_ms")

    sections.register_section_renderer("unit-broken", broken)
    try:
        html = sections.render_section("unit-broken", GenericSection({"rows": 3}))
    finally:
        sections._RENDERERS.pop("unit-broken")
    assert "renderer for section &#39;unit-broken&#39; failed (KeyError" in html
    assert "<th>rows</th><td>3</td>" in html


def test_typed_results_still_read_like_the_dicts_they_replace() -> None:
    ev = Evidence.from_json(_load(Path(__file__).parent / "data" / "evidence" /
                                  "gpu-node-loss.json"))
    assert ev.smoke["identical_outputs"] == ev.smoke["golden_inputs"] > 0
    assert "endpoint" in ev.smoke and ev.smoke.get("nothing") is None
    load = ev.sections["load"]
    assert load["marks"]["recovered_s"] == load.marks["recovered_s"]
    assert load["timeline"][0]["since_t0_s"] == load.timeline[0].since_t0_s
