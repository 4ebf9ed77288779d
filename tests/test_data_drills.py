"""The data drills against the real lab: each passes, each fails when its recovery is sabotaged on
purpose, and after every drill the lab is back to its baseline (assets, node, adapter, backup
account, credentials file, quota, jobs)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from harness.context import DrillContext
from harness.integrity import Manifest
from harness.inventory import Inventory, load_inventory
from harness.model import Verdict
from harness.runbook.object_state import VersionPlan
from harness.runbook.restore_points import set_version_restore_point
from harness.runner import DrillRequest, DrillResult, StepOverride, run_drill
from harness.scenario import Scenario, get_scenario
from harness.session import DrillSession, EvidenceWriter
from harness.targets.inference import InferenceEndpoint
from harness.targets.restic import read_credentials_file
from harness.targets.rgwadmin import RgwAdmin
from harness.targets.s3 import S3Store
from lab import data, data_jobs, data_layout
from lab.stack import MODEL_NAME, MODELS_BUCKET, Lab
from reports.render import write_evidence
from scenarios.random_tier1 import choose, run_random_tier1

pytestmark = pytest.mark.lab

FAST_PERIOD_S = 2.0


def drill(inventory: Inventory, scenario: str, variant: str, asset: str, root: Path,
          overrides: dict[str, StepOverride] | None = None) -> DrillResult:
    cls: type[Scenario] = get_scenario(scenario)
    result = run_drill(inventory, DrillRequest(cls, variant, asset, root), overrides=overrides,
                       progress=print)
    write_evidence(result.evidence, result.directory)
    return result


def _admin(inventory: Inventory) -> RgwAdmin:
    return RgwAdmin(inventory.rgw_admin("rgw-admin"))


def assert_data_baseline(lab: Lab, inventory: Inventory, quota: object) -> None:
    """Every data asset as generated, the node serving base and adapter exactly, the backup
    account and its credentials as found, the quota as found, both jobs running, no canaries."""
    store = S3Store(lab.operator_target())
    for asset in inventory.assets.values():
        if asset.kind not in ("model-weights", "lora-adapter", "pipeline-config", "dataset"):
            continue  # databases and the serving fleet have their own baseline checks
        raw = store.read_bytes(asset.bucket, asset.manifest_key)
        assert raw is not None, asset.id
        manifest = Manifest.from_bytes(raw)
        if asset.kind == "dataset":
            pinned = f"{data_layout.PINNED_VERSION}.json"
            local = data_layout.dataset_dir(lab) / "versions" / pinned
            assert raw == local.read_bytes()
            keys = {data.dataset_blob_key(f.sha256): f.sha256 for f in manifest.files}
        else:
            keys = {asset.prefix + f.path: f.sha256 for f in manifest.files}
        got = store.hash_objects(asset.bucket, [(k, None) for k in keys])
        assert {k: v[0] for k, v in got.items()} == keys, asset.id
        assert not store.list_keys(asset.bucket, f"{asset.prefix}.drill-canary/")
    assert raw_equal(store, MODELS_BUCKET, f"{MODEL_NAME}/manifest.json",
                     lab.asset_dir / "manifest.json")
    assert raw_equal(store, MODELS_BUCKET, data_layout.ADAPTER_PREFIX + "manifest.json",
                     data_layout.adapter_dir(lab) / "manifest.json")
    assert lab.node_readiness() == "ready"
    golden = json.loads((data_layout.adapter_dir(lab) / "golden.json").read_text())
    adapter = InferenceEndpoint(inventory.inference("inference-adapter"))
    assert adapter.infer(golden["inputs"]) == golden["outputs"]
    admin = _admin(inventory)
    user = admin.user_info(data_layout.BACKUP_USER)
    assert not user.suspended and user.access_keys == (lab.state.backup_key,)
    creds = read_credentials_file(data_layout.credentials_path(lab))
    assert creds["AWS_ACCESS_KEY_ID"] == lab.state.backup_key
    assert admin.bucket_quota("drillbook-secondary") == quota
    assert data_jobs.job_pid(lab, "backup") is not None
    assert data_jobs.job_pid(lab, "replication") is not None


def raw_equal(store: S3Store, bucket: str, key: str, local: Path) -> bool:
    return store.read_bytes(bucket, key) == local.read_bytes()


@pytest.fixture(scope="module")
def fast_jobs(lab: Lab) -> Iterator[Lab]:
    """Jobs every 2 s while these drills run, so detection and catch-up take seconds; the
    periods the lab had are put back afterwards."""
    before = json.loads(data_layout.config_path(lab).read_text())
    for job in data_layout.JOBS:
        data_jobs.set_period(lab, job, FAST_PERIOD_S)
    lab.write_inventory()
    yield lab
    for job in data_layout.JOBS:
        data_jobs.set_period(lab, job, float(before[job]["period_s"]))
    lab.write_inventory()


@pytest.fixture
def inventory(fast_jobs: Lab) -> Iterator[Inventory]:
    inv = load_inventory(fast_jobs.inventory_path)
    quota = _admin(inv).bucket_quota("drillbook-secondary")
    yield inv
    assert_data_baseline(fast_jobs, inv, quota)


def _noop(ctx: DrillContext, original: Callable[[], None]) -> None:
    return None


# -- checkpoint corruption -----------------------------------------------------------------


@pytest.mark.parametrize(("variant", "detector"), [("bitrot", "integrity-scan"),
                                                   ("silent", "golden-outputs")])
def test_checkpoint_corruption_recovers(inventory: Inventory, evidence_root: Path,
                                        variant: str, detector: str) -> None:
    ev = drill(inventory, "checkpoint-corruption", variant, "lab-mlp-weights",
               evidence_root).evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    corruption = ev.sections["corruption"]
    assert corruption["detected_by"] == detector
    assert corruption["errors_anywhere"] is False  # the node stayed ready throughout
    fault = next(t for t in ev.timeline if t.event == "fault.shard.corrupted")
    assert fault is not None
    assert all(c.ok for c in ev.integrity if c.phase.value == "verify")
    assert ev.smoke["identical_outputs"] == ev.smoke["golden_inputs"] > 0
    kind = "restic-snapshot" if variant == "bitrot" else "bucket-version"
    assert ev.restore_point is not None and ev.restore_point.kind == kind
    assert ev.sections["loss"]["rpo_met"] is True


def test_checkpoint_corruption_left_in_place_fails(inventory: Inventory,
                                                   evidence_root: Path) -> None:
    ev = drill(inventory, "checkpoint-corruption", "bitrot", "lab-mlp-weights", evidence_root,
               {"pull": _noop}).evidence
    assert ev.verdict is Verdict.FAIL
    assert any("verify-sha256" in r for r in ev.reasons), ev.reasons
    assert ev.rto.measured_s is None and ev.reverted


# -- adapter, config, dataset ----------------------------------------------------------------


def test_adapter_loss_recovers_from_the_scheduled_backup(inventory: Inventory,
                                                         evidence_root: Path) -> None:
    ev = drill(inventory, "adapter-loss", "purge", "lab-lora-adapter", evidence_root).evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert ev.restore_point is not None and ev.restore_point.kind == "restic-snapshot"
    loss = ev.sections["loss"]
    assert loss["restore_point"]["identity"] == ev.restore_point.identity
    assert loss["rpo_s"] == pytest.approx(ev.rpo.measured_s, abs=1e-3)
    assert loss["lost_versions"] == 0 and loss["rpo_met"] is True
    assert ev.smoke["identical_outputs"] == ev.smoke["golden_inputs"] > 0


def _older_versions(ctx: DrillContext, original: Callable[[], None]) -> None:
    """Sabotage: restore the previous adapter version (a different fine-tune)."""
    state = original.__self__.state  # type: ignore[attr-defined]
    a = ctx.asset
    store = ctx.adapters.s3(a.store)
    versions = [v for v in store.list_versions(a.bucket, a.prefix) if not v.is_delete_marker]
    plan = {}
    for key in state.keys:
        mine = [v for v in versions if v.key == key]
        plan[key] = VersionPlan(key, mine[-1], (), len(mine) - 1)
    state.plan = plan
    set_version_restore_point(ctx, state, plan)


def test_adapter_restored_to_the_wrong_version_fails(inventory: Inventory,
                                                      evidence_root: Path) -> None:
    ev = drill(inventory, "adapter-loss", "soft", "lab-lora-adapter", evidence_root,
               {"locate-restore-point": _older_versions}).evidence
    assert ev.verdict is Verdict.FAIL
    assert any("verify-sha256" in r for r in ev.reasons), ev.reasons


def test_config_loss_recovers_and_a_missing_template_fails(inventory: Inventory,
                                                           evidence_root: Path) -> None:
    ev = drill(inventory, "config-loss", "purge", "lab-rag-pipeline", evidence_root).evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert ev.sections["pipeline"]["missing_templates"] == []

    def pull_but_lose_a_template(ctx: DrillContext, original: Callable[[], None]) -> None:
        original()
        ctx.adapters.s3(ctx.asset.store).delete(ctx.asset.bucket,
                                                ctx.asset.prefix + "prompts/answer.j2")

    ev = drill(inventory, "config-loss", "purge", "lab-rag-pipeline", evidence_root,
               {"pull": pull_but_lose_a_template, "verify-sha256": _noop}).evidence
    assert ev.verdict is Verdict.FAIL
    assert any("answer.j2" in r for r in ev.reasons), ev.reasons


def test_dataset_version_restored_exactly_proven_by_manifest(inventory: Inventory,
                                                             evidence_root: Path) -> None:
    ev = drill(inventory, "dataset-version-loss", "purge", "lab-dataset", evidence_root).evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    proof = ev.sections["dataset"]
    assert proof["proven"] is True and proof["files_matching"] == proof["files"] > 0
    assert proof["restored_manifest_sha256"] == proof["manifest_sha256"]
    assert ev.sections["loss"]["rpo_met"] is True


def test_wrong_dataset_version_fails(inventory: Inventory, lab: Lab,
                                     evidence_root: Path) -> None:
    older = (data_layout.dataset_dir(lab) / "versions" / "v0001.json").read_bytes()

    def pull_older_version(ctx: DrillContext, original: Callable[[], None]) -> None:
        original()
        ctx.adapters.s3(ctx.asset.store).put_bytes(ctx.asset.bucket, ctx.asset.manifest_key,
                                                   older)

    ev = drill(inventory, "dataset-version-loss", "purge", "lab-dataset", evidence_root,
               {"pull": pull_older_version}).evidence
    assert ev.verdict is Verdict.FAIL
    # the runbook hashed what it streamed; independent verification re-reads the store
    assert any("not the pinned one" in r for r in ev.reasons), ev.reasons
    assert ev.sections["dataset"]["proven"] is False


# -- credentials, capacity, replication -----------------------------------------------------


@pytest.mark.parametrize("variant", ["revoked", "suspended"])
def test_credential_expiry_rotates_and_backups_resume(inventory: Inventory, evidence_root: Path,
                                                      variant: str) -> None:
    ev = drill(inventory, "credential-expiry", variant, "lab-dataset", evidence_root).evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    backup = ev.sections["backup"]
    assert backup["failed_runs"] >= 1 and backup["blind_s"] > 0
    assert backup["rpo_exposure_max_s"] > backup["rpo_exposure_at_fault_s"]
    expected = "UserSuspended" if variant == "suspended" else "the store refused"
    assert any(expected in e for e in backup["errors"]), backup["errors"]
    assert ev.sections["credentials"]["old_key"] == "InvalidAccessKeyId"
    assert ev.sections["credentials"]["configured_key"] == "accepted"


def test_old_key_left_configured_fails(inventory: Inventory, evidence_root: Path) -> None:
    ev = drill(inventory, "credential-expiry", "revoked", "lab-dataset", evidence_root,
               {"update-credentials": _noop}).evidence
    assert ev.verdict is Verdict.FAIL
    assert any("rerun-backup" in r for r in ev.reasons), ev.reasons
    assert ev.reverted


@pytest.mark.parametrize("variant", ["raise-quota", "retention"])
def test_storage_full_backups_land_again(inventory: Inventory, evidence_root: Path,
                                         variant: str) -> None:
    ev = drill(inventory, "storage-full", variant, "lab-dataset", evidence_root).evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert any("QuotaExceeded" in e for e in ev.sections["backup"]["errors"])
    cap = ev.sections["capacity"]
    if variant == "retention":
        assert cap["retention"]["snapshots_after"] < cap["retention"]["snapshots_before"]
        # the backup landed under the very limit that refused it
        assert cap["after_recovery"]["bytes"] <= cap["fault_quota"]["max_size"]


def test_storage_full_without_the_remedy_fails(inventory: Inventory,
                                               evidence_root: Path) -> None:
    ev = drill(inventory, "storage-full", "raise-quota", "lab-dataset", evidence_root,
               {"raise-quota": _noop}).evidence
    assert ev.verdict is Verdict.FAIL
    assert any("rerun-backup" in r and "QuotaExceeded" in r for r in ev.reasons), ev.reasons


def test_replication_break_measures_the_lag_and_catches_up(inventory: Inventory,
                                                           evidence_root: Path) -> None:
    ev = drill(inventory, "replication-break", "stopped", "lab-dataset", evidence_root).evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    rep = ev.sections["replication"]
    curve = rep["lag_curve"]
    assert len(curve) >= 4 and rep["max_unreplicated_writes"] >= 2
    ages = [s["last_sync_age_s"] for s in curve]
    assert max(ages) > 2 * FAST_PERIOD_S  # the RPO exposure grew while the job was down
    assert curve[-1]["unreplicated_writes"] == 0  # and caught up
    loss = ev.sections["loss"]
    assert loss["lost_versions"] == rep["canaries_written"] > 0


def test_replication_not_restarted_fails(inventory: Inventory, evidence_root: Path) -> None:
    ev = drill(inventory, "replication-break", "stopped", "lab-dataset", evidence_root,
               {"restart-replication": _noop}).evidence
    assert ev.verdict is Verdict.FAIL
    assert any("catch-up" in r for r in ev.reasons), ev.reasons


# -- the quarterly drill ---------------------------------------------------------------------


def test_random_tier1_is_seeded_and_recorded(inventory: Inventory, evidence_root: Path) -> None:
    picks = {choose(inventory, seed) for seed in range(40)}
    assert {p.asset for p in picks} == {a.id for a in inventory.assets.values() if a.tier == 1}
    assert choose(inventory, 7) == choose(inventory, 7)
    for p in picks:
        cls = get_scenario(p.scenario)
        assert inventory.assets[p.asset].kind in cls.asset_kinds and p.variant in cls.variants
    seed = next(s for s in range(100) if choose(inventory, s).scenario == "dataset-version-loss")
    session = DrillSession(inventory, evidence_root, sink=EvidenceWriter())
    sel, result = run_random_tier1(session, seed=seed)
    ev = result.evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert ev.sections["selection"]["seed"] == seed
    doc = json.loads((result.directory / "evidence.json").read_text())
    assert doc["sections"]["selection"]["scenario"] == sel.scenario == ev.scenario
