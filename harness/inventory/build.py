"""From parsed data to an :class:`Inventory`: the top level, objectives, guards, probe timing,
SLO and load settings, the exercise record and the evidence keys. Targets and assets are read by
:mod:`harness.inventory.targets` and :mod:`harness.inventory.assets`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.inventory.assets import assets as read_assets
from harness.inventory.assets import check_safety_bucket
from harness.inventory.fields import Reader
from harness.inventory.hosts import hosts as read_hosts
from harness.inventory.model import Asset, EvidenceSettings, ExerciseSpec, Inventory
from harness.inventory.source import Path_
from harness.inventory.targets import targets as read_targets
from harness.load import SLO, LoadSettings

TOP_LEVEL = {"version", "site", "targets", "assets", "objectives", "guards", "probe", "slo",
             "load", "exercise", "evidence", "hosts"}
DEFAULT_SAFETY_BUCKET = "drillbook-safety"


def build(file: Path, data: Any, r: Reader) -> Inventory:
    top = r.mapping(data, ())
    r.known(top, (), TOP_LEVEL)
    version = top.get("version")
    if isinstance(version, bool) or version != 1:
        raise r.fail(("version",), f"must be 1 (got {version!r})")
    site = r.string(top, "site", ())
    targets = read_targets(r.mapping(r.req(top, "targets", ()), ("targets",)), r)
    assets = read_assets(r.req(top, "assets", ()), targets, file, r)
    tiers, per_asset = _objectives(top, assets, r)
    guards = r.section(top, "guards")
    r.known(guards, ("guards",), {"safety_bucket"})
    safety = r.bucket(guards, "safety_bucket", ("guards",), default=DEFAULT_SAFETY_BUCKET)
    assert safety is not None
    check_safety_bucket(safety, assets, targets, r)
    probe = r.section(top, "probe")
    r.known(probe, ("probe",), {"interval_s", "detect_timeout_s", "step_timeout_s"})
    return Inventory(
        path=file,
        site=site,
        targets=targets,
        assets=assets,
        tier_objectives=tiers,
        asset_objectives=per_asset,
        safety_bucket=safety,
        probe_interval_s=r.number(probe, "interval_s", ("probe",), 0.5),
        detect_timeout_s=r.number(probe, "detect_timeout_s", ("probe",), 120.0),
        step_timeout_s=r.number(probe, "step_timeout_s", ("probe",), 600.0),
        slo=_slo(top, r),
        load=_load(top, r),
        exercise=_exercise(top, r),
        evidence=_evidence_settings(top, file, r),
        hosts=read_hosts(top, set(targets), set(assets), r),
    )


def _objectives(top: dict[Any, Any], assets: dict[str, Asset],
                r: Reader) -> tuple[dict[int, dict[str, float]], dict[str, dict[str, float]]]:
    obj = r.mapping(r.req(top, "objectives", ()), ("objectives",))
    r.known(obj, ("objectives",), {"tiers", "assets"})
    tiers: dict[int, dict[str, float]] = {}
    for key, spec in _sub(obj, "tiers", r).items():
        p: Path_ = ("objectives", "tiers", str(key))
        if isinstance(key, bool) or key not in (1, 2, 3):
            raise r.fail(p, "tier must be 1, 2 or 3")
        m = r.mapping(spec, p)
        r.known(m, p, {"rto_s", "rpo_s"})
        tiers[key] = {k: r.number(m, k, p) for k in ("rto_s", "rpo_s")}
    per: dict[str, dict[str, float]] = {}
    for key, spec in _sub(obj, "assets", r).items():
        p = ("objectives", "assets", str(key))
        if key not in assets:
            raise r.fail(p, f"names asset {key!r}, which is not under assets")
        m = r.mapping(spec, p)
        r.known(m, p, {"rto_s", "rpo_s"})
        per[key] = {k: r.number(m, k, p) for k in ("rto_s", "rpo_s") if k in m}
    for i, a in enumerate(assets.values()):
        have = {**tiers.get(a.tier, {}), **per.get(a.id, {})}
        for k in ("rto_s", "rpo_s"):
            if k not in have:
                raise r.fail(("assets", i, "tier"),
                             f"asset {a.id!r} has no {k} target: add objectives.tiers.{a.tier}.{k} "
                             f"or objectives.assets.{a.id}.{k}")
    return tiers, per


def _sub(m: dict[Any, Any], key: str, r: Reader) -> dict[Any, Any]:
    value = m.get(key)
    return {} if value is None else r.mapping(value, ("objectives", key))


def _slo(top: dict[Any, Any], r: Reader) -> SLO:
    """The endpoint's service level: judged per second of load (see harness.load)."""
    p: Path_ = ("slo",)
    m = r.section(top, "slo")
    r.known(m, p, {"error_rate", "p95_ms", "throughput_ratio", "sustain_s"})
    d = SLO()
    return SLO(
        max_error_rate=r.fraction(m, "error_rate", p, d.max_error_rate, zero_ok=True),
        max_p95_ms=r.positive(m, "p95_ms", p, d.max_p95_ms),
        min_throughput_ratio=r.fraction(m, "throughput_ratio", p, d.min_throughput_ratio,
                                        zero_ok=False),
        sustain_s=r.number(m, "sustain_s", p, d.sustain_s),
    )


def _load(top: dict[Any, Any], r: Reader) -> LoadSettings:
    p: Path_ = ("load",)
    m = r.section(top, "load")
    r.known(m, p, {"users", "spawn_rate", "baseline_s", "acceptance_s", "workers"})
    d = LoadSettings()
    users = r.count(m, "users", p, d.users, minimum=1, maximum=10_000)
    workers = r.count(m, "workers", p, d.workers, minimum=0, maximum=256)
    assert users is not None and workers is not None
    if workers > users:
        raise r.fail(p + ("workers",), f"{workers} workers for {users} users would leave "
                     f"workers idle (at most users)")
    return LoadSettings(
        users=users,
        spawn_rate=r.positive(m, "spawn_rate", p, d.spawn_rate),
        baseline_s=r.number(m, "baseline_s", p, d.baseline_s),
        acceptance_s=r.number(m, "acceptance_s", p, d.acceptance_s),
        workers=workers,
    )


def _exercise(top: dict[Any, Any], r: Reader) -> ExerciseSpec:
    p: Path_ = ("exercise",)
    m = r.section(top, "exercise")
    r.known(m, p, {"title", "type", "reason", "planned_date", "participants", "approver"})

    def opt(key: str) -> str | None:
        return r.string(m, key, p, required=False, multiline=key == "reason") or None

    people: list[tuple[str, str]] = []
    raw = m.get("participants")
    if raw is not None and not isinstance(raw, list):
        raise r.fail(p + ("participants",), "must be a list of {name, role}")
    for i, item in enumerate(raw or []):
        q = p + ("participants", i)
        entry = r.mapping(item, q)
        r.known(entry, q, {"name", "role"})
        people.append((r.string(entry, "name", q), r.string(entry, "role", q)))
    return ExerciseSpec(opt("title"), opt("type"), opt("reason"), r.date(m, "planned_date", p),
                        tuple(people), opt("approver"))


def _evidence_settings(top: dict[Any, Any], file: Path, r: Reader) -> EvidenceSettings:
    p: Path_ = ("evidence",)
    m = r.section(top, "evidence")
    r.known(m, p, {"signing_key", "public_key"})

    def path(key: str) -> Path | None:
        v = r.string(m, key, p, required=False)
        return r.beside(file, v, p + (key,)) if v else None

    return EvidenceSettings(path("signing_key"), path("public_key"))
