"""Inventory validation of the database kinds: postgres and mlflow targets, annotation-db and
model-registry assets; every bad input names file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import InventoryError
from harness.inventory import Inventory, MlflowTarget, PostgresTarget, load_inventory

GOOD = """\
version: 1
site: test-site
targets:
  pg:
    kind: postgres
    host: 127.0.0.1
    port: 5432
    user: postgres
    password_env: TEST_PG_PW
    drill_safe: true
  dumps:
    kind: s3
    endpoint: http://127.0.0.1:9
    access_key: AK
    secret_key: SK
  registry:
    kind: mlflow
    url: http://127.0.0.1:5000/
    drill_safe: true
assets:
  - id: annotations
    tier: 1
    kind: annotation-db
    store: pg
    database: annotations
    backup: dumps
    bucket: secondary
    prefix: pgdump/annotations/
  - id: registry-db
    tier: 1
    kind: model-registry
    store: pg
    database: mlflow
    backup: dumps
    bucket: secondary
    prefix: pgdump/mlflow/
    served_by: registry
objectives:
  tiers:
    1: {rto_s: 300, rpo_s: 3600}
"""


@pytest.fixture(autouse=True)
def _pw(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PG_PW", "s3cret")


def load(tmp_path: Path, text: str) -> Inventory:
    p = tmp_path / "inventory.yaml"
    p.write_text(text)
    return load_inventory(p)


def test_database_kinds_load(tmp_path: Path) -> None:
    inv = load(tmp_path, GOOD)
    pg = inv.postgres("pg")
    assert isinstance(pg, PostgresTarget) and pg.port == 5432 and pg.password.value == "s3cret"
    assert "s3cret" not in repr(pg)
    assert isinstance(inv.mlflow("registry"), MlflowTarget)
    assert inv.mlflow("registry").url == "http://127.0.0.1:5000"
    a, r = inv.assets["annotations"], inv.assets["registry-db"]
    assert (a.kind, a.store, a.database, a.backup, a.bucket, a.prefix) == (
        "annotation-db", "pg", "annotations", "dumps", "secondary", "pgdump/annotations/")
    assert (r.kind, r.database, r.served_by) == ("model-registry", "mlflow", "registry")


@pytest.mark.parametrize(("old", "new", "line", "field", "words"), [
    ("    port: 5432\n", "    port: many\n", 7, "targets.pg.port", "TCP port"),
    ("    url: http://127.0.0.1:5000/\n", "    url: 127.0.0.1:5000\n", 18, "targets.registry.url",
     "http(s) URL"),
    ("    store: pg\n    database: annotations\n", "    store: dumps\n    database: annotations\n",
     24, "assets[0].store", "PostgresTarget"),
    # a missing field is reported at its asset's first line
    ("    database: mlflow\n", "", 29, "assets[1].database", "required"),
    ("    served_by: registry\n", "", 29, "assets[1].served_by", "required"),
    ("    prefix: pgdump/mlflow/\n", "    prefix: pgdump/mlflow\n", 36, "assets[1].prefix",
     "end with '/'"),
    ("    bucket: secondary\n    prefix: pgdump/annotations/\n",
     "    bucket: secondary\n    prefix: pgdump/annotations/\n    golden: g.json\n", 29,
     "assets[0].golden", "unknown field"),
])
def test_database_kind_errors_are_located(tmp_path: Path, old: str, new: str, line: int,
                                          field: str, words: str) -> None:
    assert old in GOOD
    with pytest.raises(InventoryError) as err:
        load(tmp_path, GOOD.replace(old, new, 1))
    assert err.value.field == field
    assert words in err.value.message
    assert err.value.line == line, str(err.value)


def test_unknown_kinds_list_the_database_kinds(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as err:
        load(tmp_path, GOOD.replace("kind: annotation-db\n    store: pg\n    database: annotations\n",
                                    "kind: annotations\n    store: pg\n"))
    assert "annotation-db" in err.value.message and "model-registry" in err.value.message
    with pytest.raises(InventoryError) as err:
        load(tmp_path, GOOD.replace("kind: postgres", "kind: postgresql"))
    assert "postgres" in err.value.message and "mlflow" in err.value.message
