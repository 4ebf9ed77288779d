"""Host checks over ssh against the lab's OpenSSH server: they run in every drill's preflight
and verify and reach evidence, JUnit and the report; a full cache path, a clock tolerance the
check cannot meet and a world-readable credential file each stop a dependent drill INCONCLUSIVE
before anything is touched; node-cache-full passes and fails when its recovery is sabotaged; no
key reaches the evidence."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.context import DrillContext
from harness.inventory import Inventory, load_inventory
from harness.model import Verdict
from harness.runner import DrillRequest, DrillResult, StepOverride, run_drill
from harness.scenario import get_scenario
from harness.targets.s3 import S3Store
from lab import sshd
from lab.stack import MODELS_BUCKET, Lab
from reports.render import write_evidence

pytestmark = pytest.mark.lab

ADAPTER = "lab-lora-adapter"


def drill(inventory: Inventory, scenario: str, variant: str, asset: str, root: Path,
          overrides: dict[str, StepOverride] | None = None) -> DrillResult:
    result = run_drill(inventory, DrillRequest(get_scenario(scenario), variant, asset, root),
                       overrides=overrides, progress=print)
    write_evidence(result.evidence, result.directory)
    return result


def _variant(lab: Lab, change: Callable[[dict[str, Any]], None]) -> Inventory:
    """The lab's inventory with one change, written beside it (relative paths still resolve)."""
    doc = yaml.safe_load(lab.inventory_path.read_text())
    change(doc)
    path = lab.root / "inventory-hosts-test.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return load_inventory(path)


def _adapter_versions(lab: Lab, inventory: Inventory) -> list[tuple[str, str]]:
    a = inventory.assets[ADAPTER]
    return sorted((v.key, v.version_id)
                  for v in S3Store(lab.operator_target()).list_versions(MODELS_BUCKET, a.prefix))


def _refused_before_touching(lab: Lab, inventory: Inventory, root: Path, needle: str) -> None:
    before = _adapter_versions(lab, inventory)
    result = drill(inventory, "adapter-loss", "soft", ADAPTER, root)
    ev = result.evidence
    assert ev.verdict is Verdict.INCONCLUSIVE, ev.reasons
    assert any(needle in r and "nothing was touched" in r for r in ev.reasons), ev.reasons
    assert "fault.injected" not in [t.event for t in ev.timeline]
    assert _adapter_versions(lab, inventory) == before
    assert any(h.ok is not True for h in ev.host_checks)


def test_host_checks_over_ssh_in_every_drill(lab: Lab, evidence_root: Path) -> None:
    inventory = load_inventory(lab.inventory_path)
    result = drill(inventory, "adapter-loss", "soft", ADAPTER, evidence_root)
    ev = result.evidence
    assert ev.verdict is Verdict.PASS, ev.reasons
    seen = {(h.host, h.backend, h.phase.value) for h in ev.host_checks}
    assert {("backup-host", "ssh", "preflight"), ("backup-host", "ssh", "verify"),
            ("gpu-node-0", "ssh", "preflight"), ("gpu-node-0", "ssh", "verify")} <= seen
    creds = str(Path(lab.root) / "data" / "backup-credentials")
    assert f"credential-file {creds}" in {h.check for h in ev.host_checks}
    junit = (result.directory / "junit.xml").read_text()
    report = (result.directory / "report.html").read_text()
    name = f"host:verify:backup-host:credential-file {creds}"
    assert f'name="{name}"' in junit and name in report
    # no ssh key (its path or its contents) in anything the drill wrote
    key = sshd.client_key(lab)
    secret = key.read_text().splitlines()[1]
    for f in result.directory.rglob("*"):
        if f.is_file():
            text = f.read_text(errors="replace")
            assert secret not in text and str(key) not in text, f

    # a full cache path on the serving node: sparse, within its declared budget
    blob = sshd.model_cache(lab) / "filled-by-test"
    blob.touch()
    os.truncate(blob, sshd.cache_capacity(lab))
    try:
        _refused_before_touching(lab, inventory, evidence_root,
                                 f"gpu-node-0: {sshd.model_cache(lab)} has")
    finally:
        blob.unlink()

    # the backup job's credential file readable by everyone
    os.chmod(creds, 0o644)
    try:
        _refused_before_touching(lab, inventory, evidence_root,
                                 f"credential file {creds} is mode 0644")
    finally:
        os.chmod(creds, 0o600)

    # a clock tolerance no round trip can prove
    def skew(doc: dict[str, Any]) -> None:
        doc["hosts"]["backup-host"]["clock"]["tolerance_s"] = 1e-6

    skewed = _variant(lab, skew)
    _refused_before_touching(lab, skewed, evidence_root,
                             f"within 1e-06 s (declared in {skewed.path}, hosts.backup-host)")


def test_node_cache_full_passes_and_its_sabotage_fails(lab: Lab, evidence_root: Path) -> None:
    inventory = load_inventory(lab.inventory_path)
    weights = next(a.id for a in inventory.assets.values() if a.kind == "model-weights")
    ok = drill(inventory, "node-cache-full", "evict", weights, evidence_root).evidence
    assert ok.verdict is Verdict.PASS, ok.reasons
    assert ok.integrity and all(c.ok for c in ok.integrity)
    assert ok.sections["cache"]["loose_files"] >= 1

    def no_evict(ctx: DrillContext, original: Callable[[], None]) -> None:
        ctx.progress("  sabotage: nothing evicted")

    bad = drill(inventory, "node-cache-full", "evict", weights, evidence_root,
                overrides={"evict": no_evict}).evidence
    assert bad.verdict is Verdict.FAIL, bad.reasons
    assert any("the node cannot pull it" in r for r in bad.reasons), bad.reasons
    assert bad.reverted, "revert removed the drill's blobs"
    assert not [p for p in sshd.model_cache(lab).iterdir() if p.name.startswith("stale-blob-")]
