"""The database contract: the same assertions against the in-memory FakeDatabase (lab-free) and
the real PostgreSQL adapter on the lab (marked ``lab``), so the fake means what the real one
means for everything the database drills rely on."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from harness.blast import Fence, Touch
from harness.errors import GuardRefused, Inconclusive
from harness.fakes.database import FakeDatabase
from harness.journal import Clock
from harness.targets.database import Database, DatabaseMissing, sha256_file
from harness.targets.protocols import DatabaseAPI

ROWS = {"1": "first", "2": "second", "3": "third"}


@dataclass
class Subject:
    db: DatabaseAPI
    target: str  # the target name the fence speaks of
    name: str  # a scratch database holding table ``notes`` with ROWS
    write: Callable[[str, str], None]  # (key, text): a user's write to ``notes``


def _fake(name: str) -> Subject:
    db = FakeDatabase("postgres", Clock())
    db.create_database(name, "owner", {"notes": {k: {"text": v} for k, v in ROWS.items()}})
    return Subject(db, "postgres", name,
                   lambda k, v: db.put_row(name, "notes", k, {"text": v}))


def _real(request: pytest.FixtureRequest, name: str) -> Subject:
    from harness.inventory import load_inventory
    lab = request.getfixturevalue("lab")
    target = load_inventory(lab.inventory_path).postgres("postgres")
    db = Database(target)
    db.create(name, target.user)
    db.execute(name, "CREATE TABLE notes (id int PRIMARY KEY, text text)")
    for k, v in ROWS.items():
        db.execute(name, "INSERT INTO notes VALUES (%s, %s)", (int(k), v))
    def write(key: str, text: str) -> None:
        db.execute(name, "INSERT INTO notes VALUES (%s, %s) ON CONFLICT (id) DO UPDATE "
                   "SET text = %s", (int(key), text, text))

    return Subject(db, target.name, name, write)


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.lab)])
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    name = f"drillbook_contract_{secrets.token_hex(3)}"
    s = _fake(name) if request.param == "fake" else _real(request, name)
    yield s
    s.db.fence = None
    for leftover in (name, f"{name}_copy"):
        s.db.drop(leftover)


def test_tables_rows_and_checksums(subject: Subject) -> None:
    db, name = subject.db, subject.name
    assert db.exists(name) and not db.exists(f"{name}_absent")
    assert db.tables(name) == ["notes"]
    states = db.table_states(name)
    assert states["notes"].rows == 3 and len(states["notes"].checksum) == 64
    hashes = db.row_hashes(name, "notes")
    assert sorted(hashes) == sorted(ROWS)
    subject.write("2", "changed")
    after = db.table_states(name)
    assert after["notes"].rows == 3 and after["notes"].checksum != states["notes"].checksum
    changed = db.row_hashes(name, "notes")
    assert [k for k in sorted(ROWS) if changed[k] != hashes[k]] == ["2"]


def test_dump_restore_round_trip(subject: Subject, tmp_path: Path) -> None:
    db, name = subject.db, subject.name
    info = db.dump(name, tmp_path / "x.dump")
    assert info.sha256 == sha256_file(info.path) and info.size == info.path.stat().st_size
    assert info.tables == db.table_states(name)
    assert any("notes" in line for line in db.list_archive(info.path))
    made = db.archive_created(info.path)
    assert info.created - timedelta(seconds=2) <= made <= info.created + timedelta(seconds=1)
    subject.write("4", "after the dump")
    copy = f"{name}_copy"
    db.restore(copy, info.path, db.owner(name))
    assert db.table_states(copy) == info.tables != db.table_states(name)
    with pytest.raises(Inconclusive, match="refusing to restore over"):
        db.restore(copy, info.path, db.owner(name))


def test_drop_and_missing_database(subject: Subject) -> None:
    db, name = subject.db, subject.name
    db.drop(name)
    assert not db.exists(name)
    with pytest.raises(DatabaseMissing):
        db.table_states(name)
    db.drop(name)  # dropping what is gone is no error


def test_fence_refuses_writes_outside_the_declared_database(subject: Subject,
                                                           tmp_path: Path) -> None:
    db, name = subject.db, subject.name
    info = db.dump(name, tmp_path / "x.dump")
    db.fence = Fence([Touch.database(subject.target, "some_other_database")])
    with pytest.raises(GuardRefused):
        db.drop(name)
    with pytest.raises(GuardRefused):
        db.restore(f"{name}_copy", info.path, db.owner(name))
    assert db.exists(name) and db.table_states(name) == info.tables  # reads are never fenced
    db.fence = Fence([Touch.database(subject.target, name)])
    db.drop(name)
    assert not db.exists(name)
