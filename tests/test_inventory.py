"""Inventory validation: every bad input names file, line and field; a good one loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InventoryError
from harness.inventory import load_inventory

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
