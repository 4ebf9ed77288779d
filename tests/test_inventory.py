"""Inventory validation: every bad input names file, line and field; a good one loads."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from inventory_samples import dump, lab_like

from harness.errors import InventoryError
from harness.inventory import load_inventory
from harness.load import SLO, LoadSettings

GOOD = """\
version: 1
site: test-site
targets:
  store:
    kind: s3
    endpoint: http://127.0.0.1:9
    access_key: AK
    secret_key: SK
    drill_safe: true
  backups:
    kind: restic
    repository: s3:http://127.0.0.1:9/b/restic
    password_env: TEST_RESTIC_PW
  serve:
    kind: inference
    url: http://127.0.0.1:8/
    model: m
assets:
  - id: weights
    tier: 1
    kind: model-weights
    store: store
    bucket: models
    prefix: m/
    backup: backups
    backup_path: /stage/models/m
    served_by: serve
objectives:
  tiers:
    1: {rto_s: 300, rpo_s: 86400}
  assets:
    weights: {rto_s: 120}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "inventory.yaml"
    p.write_text(text)
    return p


@pytest.fixture(autouse=True)
def _pw(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_RESTIC_PW", "pw")


def test_good_inventory_loads(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, GOOD))
    a = inv.assets["weights"]
    assert a.manifest_key == "m/manifest.json"
    t = inv.objectives_for(a)
    assert (t.rto_s, t.rpo_s) == (120.0, 86400.0)
    assert inv.s3("store").drill_safe is True
    assert inv.restic("backups").password.value == "pw"
    assert "pw" not in repr(inv.restic("backups"))
    assert inv.inference("serve").url == "http://127.0.0.1:8"


@pytest.mark.parametrize("old, new, line, field, needle", [
    ("    tier: 1\n", "    tier: seven\n", 20, "assets[0].tier", "must be 1, 2 or 3"),
    ("    store: store\n", "    store: nowhere\n", 22, "assets[0].store", "not under targets"),
    ("    store: store\n", "    store: serve\n", 22, "assets[0].store", "not of the right kind"),
    ("    endpoint: http://127.0.0.1:9\n", "    endpoint: 127.0.0.1:9\n", 6,
     "targets.store.endpoint", "http(s) URL"),
    ("    prefix: m/\n", "    prefix: m\n", 24, "assets[0].prefix", "must end with '/'"),
    ("    kind: inference\n", "    kind: infrence\n", 15, "targets.serve.kind",
     "unknown target kind"),
    ("    drill_safe: true\n", "    drill_safe: yes please\n", 9, "targets.store.drill_safe",
     "true or false"),
    ("    1: {rto_s: 300, rpo_s: 86400}\n", "    1: {rto_s: -5, rpo_s: 86400}\n", 30,
     "objectives.tiers.1.rto_s", "positive number"),
    ("    weights: {rto_s: 120}\n", "    weight: {rto_s: 120}\n", 32,
     "objectives.assets.weight", "not under assets"),
    ("    password_env: TEST_RESTIC_PW\n", "    password_env: NOT_SET_ANYWHERE_X\n", 13,
     "targets.backups.password_env", "is not set"),
    ("    bucket: models\n", "    bucket: models\n    buckett: x\n", 24, "assets[0].buckett",
     "unknown field"),
    ("version: 1\n", "version: 2\n", 1, "version", "must be 1"),
])
def test_bad_inventory_names_line_and_field(tmp_path: Path, old: str, new: str, line: int,
                                            field: str, needle: str) -> None:
    assert old in GOOD
    with pytest.raises(InventoryError) as info:
        load_inventory(write(tmp_path, GOOD.replace(old, new, 1)))
    err = info.value
    assert (err.line, err.field) == (line, field), str(err)
    assert needle in err.message
    assert str(err).startswith(f"{tmp_path / 'inventory.yaml'}:{line}: {field}:")


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as info:
        load_inventory(write(tmp_path, GOOD.replace("  store:\n", "  store: [\n", 1)))
    assert info.value.field == "(syntax)" and info.value.line > 0


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="duplicate key"):
        load_inventory(write(tmp_path, GOOD.replace("site: test-site\n",
                                                    "site: a\nsite: b\n", 1)))


def test_missing_objective_is_reported_on_the_asset(tmp_path: Path) -> None:
    text = GOOD.replace("    1: {rto_s: 300, rpo_s: 86400}\n", "    2: {rto_s: 300, rpo_s: 1}\n")
    with pytest.raises(InventoryError, match="has no rpo_s target"):
        load_inventory(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="cannot read"):
        load_inventory(tmp_path / "nope.yaml")


# --- slo: and load: sections (harness.load) ------------------------------------------------------

SLO_LOAD = """\
slo:
  error_rate: 0.02
  p95_ms: 250
  throughput_ratio: 0.9
  sustain_s: 3
load:
  users: 8
  spawn_rate: 50
  baseline_s: 6
  acceptance_s: 4
  workers: 2
"""
SLO_LINE = GOOD.count("\n") + 1  # line of "slo:" once appended


def test_slo_and_load_default_when_absent(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, GOOD))
    assert inv.slo == SLO() and inv.load == LoadSettings()
    assert (inv.slo.max_error_rate, inv.slo.max_p95_ms, inv.slo.min_throughput_ratio,
            inv.slo.sustain_s) == (0.01, 500.0, 0.8, 5.0)
    assert (inv.load.users, inv.load.spawn_rate, inv.load.workers) == (4, 100.0, 0)


def test_slo_and_load_sections_load(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, GOOD + SLO_LOAD))
    assert inv.slo == SLO(max_error_rate=0.02, max_p95_ms=250.0, min_throughput_ratio=0.9,
                          sustain_s=3.0)
    assert inv.load == LoadSettings(users=8, spawn_rate=50.0, baseline_s=6.0, acceptance_s=4.0,
                                    workers=2)
    profile = inv.load.profile("http://127.0.0.1:1", "m", [[0.0]], duration_s=7)
    assert (profile.users, profile.workers, profile.duration_s) == (8, 2, 7)


@pytest.mark.parametrize("old, new, offset, field, needle", [
    ("  error_rate: 0.02\n", "  error_rate: 1.5\n", 1, "slo.error_rate", "fraction in [0, 1]"),
    ("  error_rate: 0.02\n", "  error_rate: lots\n", 1, "slo.error_rate", "fraction"),
    ("  p95_ms: 250\n", "  p95_ms: 0\n", 2, "slo.p95_ms", "positive number"),
    ("  throughput_ratio: 0.9\n", "  throughput_ratio: 0\n", 3, "slo.throughput_ratio",
     "fraction in (0, 1]"),
    ("  sustain_s: 3\n", "  sustain_s: -1\n", 4, "slo.sustain_s", "positive number"),
    ("  sustain_s: 3\n", "  sustain_s: 3\n  sustian_s: 3\n", 5, "slo.sustian_s", "unknown field"),
    ("  users: 8\n", "  users: 2.5\n", 6, "load.users", "whole number >= 1"),
    ("  users: 8\n", "  users: 0\n", 6, "load.users", "whole number >= 1"),
    ("  spawn_rate: 50\n", "  spawn_rate: true\n", 7, "load.spawn_rate", "positive number"),
    ("  baseline_s: 6\n", "  baseline_s: 0\n", 8, "load.baseline_s", "positive number"),
    ("  acceptance_s: 4\n", "  acceptance_s: soon\n", 9, "load.acceptance_s", "positive number"),
    ("  workers: 2\n", "  workers: -1\n", 10, "load.workers", "whole number >= 0"),
    ("  workers: 2\n", "  workers: 9\n", 10, "load.workers", "idle"),
    (SLO_LOAD[SLO_LOAD.index("load:"):], "load: 4\n", 5, "load", "must be a mapping"),
])
def test_bad_slo_or_load_names_line_and_field(tmp_path: Path, old: str, new: str, offset: int,
                                              field: str, needle: str) -> None:
    assert old in SLO_LOAD
    with pytest.raises(InventoryError) as info:
        load_inventory(write(tmp_path, GOOD + SLO_LOAD.replace(old, new, 1)))
    err = info.value
    line = SLO_LINE + offset
    assert (err.line, err.field) == (line, field), str(err)
    assert needle in err.message
    assert str(err).startswith(f"{tmp_path / 'inventory.yaml'}:{line}: {field}:")


# --- values the first loader let through (issue 12), and the safety bucket (issue 8) ------------

def _lab(tmp_path: Path, change: Callable[[dict[str, Any]], object]) -> Path:
    doc = lab_like(tmp_path)
    change(doc)
    path = tmp_path / "lab.yaml"
    path.write_bytes(dump(doc))
    return path


def _set(*path: Any, value: Any) -> Callable[[dict[str, Any]], object]:
    def change(doc: dict[str, Any]) -> None:
        node: Any = doc
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = value
    return change


@pytest.mark.parametrize("change, field, needle", [
    (_set("objectives", "tiers", 1, "rto_s", value=math.nan), "objectives.tiers.1.rto_s",
     "positive number"),
    (_set("objectives", "assets", "annotations-db", "rpo_s", value=math.inf),
     "objectives.assets.annotations-db.rpo_s", "positive number"),
    (_set("probe", "interval_s", value=math.nan), "probe.interval_s", "positive number"),
    (_set("slo", "p95_ms", value=math.inf), "slo.p95_ms", "positive number"),
    (_set("slo", "error_rate", value=math.nan), "slo.error_rate", "fraction"),
    (_set("targets", "backup-job", "period_s", value=-math.inf), "targets.backup-job.period_s",
     "positive number"),
    (_set("objectives", "tiers", 2, "rpo_s", value=1e12), "objectives.tiers.2.rpo_s",
     "at most"),
    (_set("exercise", "planned_date", value="2026-13-45"), "exercise.planned_date",
     "not a date"),
    (_set("targets", "backup-job", "admin", value="nobody"), "targets.backup-job.admin",
     "not under targets"),
    (_set("targets", "backup-job", "admin", value="artifact-store"),
     "targets.backup-job.admin", "must name a rgw-admin target"),
    (_set("targets", "backup-job", "repository", value="nowhere"),
     "targets.backup-job.repository", "not under targets"),
    (_set("targets", "backup-job", "repository", value="artifact-store"),
     "targets.backup-job.repository", "must name a restic target"),
    (_set("targets", "replication-job", "replica_store", value="gone"),
     "targets.replication-job.replica_store", "not under targets"),
    (_set("targets", "fleet-lb", "frontend", value="nope"), "targets.fleet-lb.frontend",
     "not under targets"),
    (_set("targets", "fleet-lb", "frontend", value="mlflow"), "targets.fleet-lb.frontend",
     "must name a inference target"),
    (_set("assets", 6, "nodes", value=[["gpu-node-1"]]), "assets[6].nodes[0]",
     "not a node target"),
    (_set("assets", 6, "nodes", value=["gpu-node-1", "gpu-node-1"]), "assets[6].nodes[1]",
     "twice"),
    (_set("assets", 0, "id", value="../../etc"), "assets[0].id", "letters, digits"),
    (_set("assets", 0, "bucket", value="models bucket"), "assets[0].bucket", "bucket name"),
    (_set("site", value="a\x00b"), "site", "control character"),
])
def test_values_the_first_loader_let_through_are_located(
        tmp_path: Path, change: Callable[[dict[str, Any]], object], field: str,
        needle: str) -> None:
    path = _lab(tmp_path, change)
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.field == field and needle in info.value.message, str(info.value)
    assert info.value.line > 1


@pytest.mark.parametrize("bucket, holds", [
    ("drillbook-models", "asset lab-mlp-weights's data"),
    ("drillbook-datasets", "asset lab-dataset's data"),
    ("drillbook-secondary", "database dumps"),  # also the restic repositories' bucket
    ("drillbook-replica", "replica"),
])
def test_a_safety_bucket_that_holds_an_asset_is_refused(tmp_path: Path, bucket: str,
                                                        holds: str) -> None:
    path = _lab(tmp_path, _set("guards", "safety_bucket", value=bucket))
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.field == "guards.safety_bucket" and holds in info.value.message


def test_a_restic_repository_bucket_is_data_too(tmp_path: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["targets"]["secondary-backups"]["repository"] = (
            "s3:http://127.0.0.1:7480/drillbook-restic/repo")
        doc["guards"]["safety_bucket"] = "drillbook-restic"
    with pytest.raises(InventoryError, match="restic repository secondary-backups"):
        load_inventory(_lab(tmp_path, change))


def test_the_same_bucket_name_on_another_store_is_allowed(tmp_path: Path) -> None:
    """Only the store the safety copy is written to matters: a bucket of that name elsewhere
    (another site's endpoint) holds nothing of this one's."""
    def change(doc: dict[str, Any]) -> None:
        doc["targets"]["replica-store"]["endpoint"] = "https://s3.dc2.example.internal"
        doc["guards"]["safety_bucket"] = "drillbook-replica"
    assert load_inventory(_lab(tmp_path, change)).safety_bucket == "drillbook-replica"
