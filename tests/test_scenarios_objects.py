"""The object scenarios (artifact-deletion, checkpoint-corruption, adapter-loss, config-loss,
dataset-version-loss), every variant, run end to end by the real runner on in-memory fakes and a
ManualClock: a correct recovery PASSes, a sabotaged one FAILs, a missing restore point is
INCONCLUSIVE with nothing touched, and an exception in the runbook still leaves every object as
it was found. No lab, no network, no subprocess."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import harness.provenance
from harness.context import DrillContext
from harness.model import Evidence, Phase, Verdict
from harness.runbook.bind import BoundStep
from harness.runbook.object_state import ObjectState, Source
from harness.runner import DrillResult, StepOverride
from harness.scenario import Scenario
from scenarios.adapter_loss import AdapterLoss
from scenarios.artifact_deletion import ArtifactDeletion
from scenarios.checkpoint_corruption import CheckpointCorruption
from scenarios.config_loss import ConfigLoss
from scenarios.dataset_version_loss import DatasetVersionLoss
from tests.object_site import BACKUP_AGE_S, Site, build_site

Case = tuple[type[Scenario], str, str]

CASES: list[Case] = [
    (ArtifactDeletion, "soft", "weights"), (ArtifactDeletion, "purge", "weights"),
    (CheckpointCorruption, "bitrot", "weights"), (CheckpointCorruption, "silent", "weights"),
    (AdapterLoss, "purge", "adapter"), (AdapterLoss, "soft", "adapter"),
    (ConfigLoss, "purge", "config"), (ConfigLoss, "soft", "config"),
    (DatasetVersionLoss, "purge", "dataset"), (DatasetVersionLoss, "soft", "dataset"),
]
IDS = [f"{c.name}-{v}" for c, v, _ in CASES]
FROM_BACKUP = {"purge", "bitrot"}
SERVED = {"weights": "inference", "adapter": "inference-adapter"}


@pytest.fixture(autouse=True)
def _no_host_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The evidence's tool versions and environment fingerprint run subprocesses and read every
    installed distribution's metadata: not what these tests are about, and seconds per drill."""
    monkeypatch.setattr(harness.provenance, "tool_versions", lambda: {"restic": "unit test"})
    monkeypatch.setattr(harness.provenance, "environment_fingerprint",
                        lambda path: {"hostname": "unit-test"})


@pytest.fixture
def evidence_root(tmp_path: Path) -> Iterator[Path]:
    """On tmpfs where there is one: the journal fsyncs every line it writes."""
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp_path / "evidence"
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def make_site(tmp_path: Path, evidence_root: Path) -> Callable[..., Site]:
    def make(**kw: object) -> Site:
        return build_site(tmp_path / "site", evidence_root, **kw)  # type: ignore[arg-type]
    return make


@pytest.fixture
def site(make_site: Callable[..., Site]) -> Site:
    return make_site()


def answers(site: Site, asset: str) -> list[list[float]] | None:
    """What the asset's endpoint answers to its golden inputs now (None: not served)."""
    if asset not in SERVED:
        return None
    golden = site.inventory.assets[asset].golden
    assert golden is not None
    inputs = json.loads(golden.read_text())["inputs"]
    return site.endpoints[SERVED[asset]].infer(inputs)


def journal(result: DrillResult, event: str) -> list[dict[str, object]]:
    lines = (result.directory / "journal.jsonl").read_text().splitlines()
    return [r["detail"] for r in map(json.loads, lines) if r.get("event") == event]


def assert_as_found(site: Site, before: list[tuple[str, str, str, int, bool]],
                    asset: str, served_before: list[list[float]] | None,
                    ev: Evidence) -> None:
    assert ev.reverted, ev.reasons
    assert site.state() == before
    assert site.safety_left() == []  # the safety copy was discarded
    assert answers(site, asset) == served_before


def state_of(original: Callable[[], None]) -> ObjectState:
    step = original.__self__  # type: ignore[attr-defined]
    assert isinstance(step, BoundStep) and isinstance(step.state, ObjectState)
    return step.state


# -- a correct recovery ---------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "variant", "asset"), CASES, ids=IDS)
def test_correct_recovery_passes(site: Site, cls: type[Scenario], variant: str,
                                 asset: str) -> None:
    before, served = site.state(), answers(site, asset)
    result = site.drill(cls, variant, asset)
    ev = result.evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert_as_found(site, before, asset, served, ev)
    checks = [c for c in ev.integrity if c.phase is Phase.VERIFY]
    assert checks and all(c.ok for c in checks)
    assert ev.rto.measured_s is not None and ev.rto.met is True
    point = ev.restore_point
    assert point is not None
    if variant in FROM_BACKUP:
        # the snapshot is a minute older than the fault; ManualClock makes that exact
        assert point.kind == "restic-snapshot" and ev.rpo.measured_s == BACKUP_AGE_S
        assert ev.rpo.definition == "restore-point-age"
    else:
        # bucket versioning kept every write: nothing was lost
        assert point.kind == "bucket-version" and ev.rpo.measured_s == 0.0
        assert ev.rpo.definition == "writes-lost" and point.newer_versions_lost == 0
    loss = ev.sections["loss"]
    assert loss["rpo_s"] == ev.rpo.measured_s and loss["lost_versions"] == 0
    if asset in SERVED:
        total = ev.smoke["golden_inputs"]
        assert isinstance(total, int) and ev.smoke["identical_outputs"] == total > 0
        assert ev.rto.measured_s >= 2.0  # at least one reload of the node (LOAD_S)
    else:
        assert not ev.smoke.recorded


def test_checkpoint_corruption_is_detected_by_the_right_probe(site: Site) -> None:
    bitrot = site.drill(CheckpointCorruption, "bitrot", "weights").evidence
    silent = site.drill(CheckpointCorruption, "silent", "weights").evidence
    assert bitrot.sections["corruption"]["detected_by"] == "integrity-scan"
    assert silent.sections["corruption"]["detected_by"] == "golden-outputs"
    # the node stayed ready throughout: nothing reported an error
    assert not bitrot.sections["corruption"]["errors_anywhere"]
    assert not silent.sections["corruption"]["errors_anywhere"]
    assert bitrot.verdict is silent.verdict is Verdict.PASS


def test_soft_reads_no_object_twice_and_bitrot_does_not_prove_twice(site: Site) -> None:
    soft = site.drill(ArtifactDeletion, "soft", "weights")
    assert soft.evidence.verdict is Verdict.PASS
    hashed = {d["what"]: d for d in journal(soft, "objects.hashed")}
    # removing the delete markers brings back the very versions preflight read
    assert hashed["verify-sha256"]["read"] == 0 and hashed["verify"]["read"] == 0
    bitrot = site.drill(CheckpointCorruption, "bitrot", "weights")
    assert bitrot.evidence.verdict is Verdict.PASS
    assert len(journal(bitrot, "restorable.proven")) == 1  # preflight's proof only
    assert journal(bitrot, "restore-point.reused")
    scan = {d["what"]: d for d in journal(bitrot, "objects.hashed")}["integrity-scan"]
    assert scan["read"] == 0  # detection read every object already


def test_a_newest_snapshot_holding_the_damage_is_passed_over(site: Site) -> None:
    a = site.inventory.assets["weights"]
    assert a.backup_path is not None
    files = {k[len(a.prefix):]: d for k, d in site.published["weights"].items()}
    files["config.json"] = b"{}"  # a backup taken of damaged data
    newest = site.repo.add_snapshot(a.backup_path, files, time=site.clock.utc())
    site.clock.advance(10)
    ev = site.drill(ArtifactDeletion, "purge", "weights").evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert ev.restore_point is not None and ev.restore_point.identity != newest.id
    assert ev.rpo.measured_s == BACKUP_AGE_S + 10
    assert ev.audit is not None
    assert any(newest.short_id in d and "corrupt" in d for d in ev.audit.deviations)


def test_a_backup_that_cannot_be_read_is_no_restore_point(site: Site) -> None:
    (snap,) = [s for s in site.repo.snapshots() if s.paths == ("/stage/models",)]
    site.repo.rot(snap.id, "model-00002-of-00002.safetensors")
    before = site.state()
    ev = site.drill(CheckpointCorruption, "bitrot", "weights").evidence
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("no restore point" in r for r in ev.reasons), ev.reasons
    assert ev.audit is not None and any("unreadable" in d for d in ev.audit.deviations)
    assert site.state() == before


# -- a sabotaged recovery -------------------------------------------------------------------------


def _skip(ctx: DrillContext, original: Callable[[], None]) -> None:
    return None


def _wrong_bytes(ctx: DrillContext, original: Callable[[], None]) -> None:
    """Pull, then one restored object gets other bytes (a bad disk, a wrong source)."""
    original()
    state = state_of(original)
    key = next(k for k in state.targets if k != ctx.asset.manifest_key)
    ctx.adapters.s3(ctx.asset.store).put_bytes(ctx.asset.bucket, key, b"not what was restored")


@pytest.mark.parametrize("sabotage", [_skip, _wrong_bytes], ids=["skip-pull", "wrong-bytes"])
@pytest.mark.parametrize(("cls", "variant", "asset"), CASES, ids=IDS)
def test_sabotaged_recovery_fails(site: Site, cls: type[Scenario], variant: str, asset: str,
                                  sabotage: StepOverride) -> None:
    before, served = site.state(), answers(site, asset)
    ev = site.drill(cls, variant, asset, {"pull": sabotage}).evidence
    assert ev.verdict is Verdict.FAIL, ev.reasons
    assert any(not c.ok for c in ev.integrity), ev.reasons
    assert ev.rto.measured_s is None
    assert_as_found(site, before, asset, served, ev)


@pytest.mark.parametrize(("cls", "variant", "asset"),
                         [c for c in CASES if c[1] in FROM_BACKUP and c[2] in SERVED],
                         ids=[f"{c.name}-{v}" for c, v, a in CASES
                              if v in FROM_BACKUP and a in SERVED])
def test_a_store_damaged_after_the_service_is_back_fails_verify(
        site: Site, cls: type[Scenario], variant: str, asset: str) -> None:
    """The independent re-read is verify's own, after the runbook: bytes that change once the
    service is back (the runbook's last step) are caught, whatever the runbook saw. A re-read
    started during the runbook would have read the store before this damage."""
    before, served = site.state(), answers(site, asset)
    damaged: list[str] = []

    def damage_after_smoke(ctx: DrillContext, original: Callable[[], None]) -> None:
        original()
        a = ctx.asset
        key = next(k for b, k, *_ in site.state() if b == a.bucket and k.startswith(a.prefix)
                   and k != a.manifest_key and k.endswith(".safetensors"))
        ctx.adapters.s3(a.store).put_bytes(a.bucket, key, b"changed after the smoke test")
        damaged.append(key)

    ev = site.drill(cls, variant, asset, {"smoke-test": damage_after_smoke}).evidence
    assert damaged, f"the smoke-test step did not run: {ev.reasons}"
    assert ev.verdict is Verdict.FAIL, ev.reasons
    assert any(not c.ok for c in ev.integrity), ev.reasons
    assert any(damaged[0] in r for r in ev.reasons), ev.reasons
    assert_as_found(site, before, asset, served, ev)


def test_a_missing_template_fails_config_loss(site: Site) -> None:
    def pull_but_lose_a_template(ctx: DrillContext, original: Callable[[], None]) -> None:
        original()
        ctx.adapters.s3(ctx.asset.store).delete(ctx.asset.bucket,
                                                ctx.asset.prefix + "prompts/answer.j2")

    ev = site.drill(ConfigLoss, "purge", "config",
                    {"pull": pull_but_lose_a_template, "verify-sha256": _skip}).evidence
    assert ev.verdict is Verdict.FAIL
    assert any("answer.j2" in r for r in ev.reasons), ev.reasons


def test_an_older_dataset_version_fails(site: Site) -> None:
    older = site.store.read_bytes("datasets", "ds/versions/v0001.json")
    assert older is not None

    def pull_older_version(ctx: DrillContext, original: Callable[[], None]) -> None:
        original()
        ctx.adapters.s3(ctx.asset.store).put_bytes(ctx.asset.bucket, ctx.asset.manifest_key,
                                                   older)

    ev = site.drill(DatasetVersionLoss, "purge", "dataset", {"pull": pull_older_version}).evidence
    assert ev.verdict is Verdict.FAIL
    assert any("not the pinned one" in r for r in ev.reasons), ev.reasons
    assert ev.sections["dataset"]["proven"] is False


def test_a_write_outside_the_blast_radius_is_refused(site: Site) -> None:
    def write_elsewhere(ctx: DrillContext, original: Callable[[], None]) -> None:
        ctx.adapters.s3(ctx.asset.store).put_bytes(ctx.asset.bucket, "other-model/x", b"x")

    before = site.state()
    ev = site.drill(ArtifactDeletion, "soft", "weights", {"pull": write_elsewhere}).evidence
    assert ev.verdict is Verdict.FAIL
    assert any("outside the drill's declared blast radius" in r for r in ev.reasons), ev.reasons
    assert not site.store.exists("models", "other-model/x")
    assert ev.reverted and site.state() == before


# -- no restore point, or a target that cannot be drilled --------------------------------------


@pytest.mark.parametrize(("cls", "variant", "asset"), CASES, ids=IDS)
def test_missing_restore_point_is_inconclusive_and_touches_nothing(
        make_site: Callable[..., Site], cls: type[Scenario], variant: str, asset: str) -> None:
    if variant in FROM_BACKUP:
        site, why = make_site(snapshot_age_s=None), "no restic snapshot"
    else:
        site, why = make_site(versioned=False), "versioning is not enabled"
    before, served = site.state(), answers(site, asset)
    ev = site.drill(cls, variant, asset).evidence
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("no restore point" in r and why in r for r in ev.reasons), ev.reasons
    assert not any(t.event == "fault.injected" for t in ev.timeline)
    assert site.state() == before and answers(site, asset) == served
    assert site.safety_left() == []


def test_a_snapshot_dated_after_the_fault_is_never_the_restore_point(
        make_site: Callable[..., Site]) -> None:
    site = make_site(snapshot_age_s=-1.0)  # only snapshots from a backup host an hour fast
    before = site.state()
    ev = site.drill(ArtifactDeletion, "purge", "weights").evidence
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("no restore point" in r for r in ev.reasons), ev.reasons
    assert ev.audit is not None and any("clock tolerance" in d for d in ev.audit.deviations)
    assert site.state() == before


def test_an_asset_damaged_before_the_drill_is_refused(site: Site) -> None:
    site.store.put_bytes("models", "mlp/config.json", b"{}")
    before = site.state()
    ev = site.drill(ArtifactDeletion, "purge", "weights").evidence
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("already damaged before the drill" in r for r in ev.reasons), ev.reasons
    assert site.state() == before


def test_an_unreachable_store_is_inconclusive(site: Site) -> None:
    site.store.unreachable = True
    ev = site.drill(ArtifactDeletion, "soft", "weights").evidence
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("unreachable" in r for r in ev.reasons), ev.reasons


# -- an exception in the runbook ---------------------------------------------------------------


def _pull_then_crash(ctx: DrillContext, original: Callable[[], None]) -> None:
    original()
    raise RuntimeError("the restore host crashed")


@pytest.mark.parametrize(("cls", "variant", "asset"), CASES, ids=IDS)
def test_an_exception_in_the_runbook_still_reverts(site: Site, cls: type[Scenario],
                                                   variant: str, asset: str) -> None:
    before, served = site.state(), answers(site, asset)
    ev = site.drill(cls, variant, asset, {"pull": _pull_then_crash}).evidence
    assert ev.verdict is Verdict.FAIL
    assert any("the restore host crashed" in r for r in ev.reasons), ev.reasons
    assert_as_found(site, before, asset, served, ev)


def test_the_restore_source_follows_the_variant(site: Site) -> None:
    seen: dict[str, Source] = {}

    def record(ctx: DrillContext, original: Callable[[], None]) -> None:
        seen[ctx.variant] = state_of(original).source
        original()

    for variant in ("soft", "purge"):
        assert site.drill(AdapterLoss, variant, "adapter",
                          {"locate-restore-point": record}).evidence.verdict is Verdict.PASS
    assert seen == {"soft": Source.VERSIONS, "purge": Source.BACKUP}
