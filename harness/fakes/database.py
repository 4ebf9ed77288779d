"""An in-memory PostgreSQL server for unit tests: :class:`FakeDatabase` implements
:class:`harness.targets.protocols.DatabaseAPI` with the meaning of harness/targets/database.py.

Databases hold tables of rows (a key and a dict of columns). What the drills rely on behaves as
the real adapter's does: table states (row count and a SHA-256 over the rows' hashes in key order)
read in one snapshot; a dump that carries its tables' states and its creation time (the archive's
header, to the second, as ``pg_restore --list`` prints it); restore refuses to overwrite an
existing database; writes outside the drill's ``fence`` are refused; a stopped server raises
:class:`~harness.errors.TargetUnreachable` and a missing database
:class:`~harness.targets.database.DatabaseMissing`. Dumps are real files (JSON), so the
scenarios' SHA-256 checks of them are real too. ``query`` answers only
``SELECT col[::text], ... FROM table``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.blast import Fence
from harness.errors import Inconclusive, TargetUnreachable
from harness.journal import Clock
from harness.targets.database import DatabaseMissing, DumpInfo, TableState, ToolFailed, sha256_file

FORMAT = "drillbook-fake-pgdump/1"
_SELECT = re.compile(r"^\s*SELECT\s+(.+?)\s+FROM\s+([\w.]+)\s*$", re.IGNORECASE)

Rows = dict[str, dict[str, Any]]  # key -> columns


def row_text(row: dict[str, Any]) -> str:
    """A row's text form (what the real adapter hashes as ``t::text``)."""
    return json.dumps(row, sort_keys=True, default=str)


def table_state(rows: Rows) -> TableState:
    inner = "".join(hashlib.sha256(row_text(rows[k]).encode()).hexdigest() for k in sorted(rows))
    return TableState(len(rows), hashlib.sha256(inner.encode()).hexdigest())


class FakeDatabase:
    """One PostgreSQL server in memory."""

    def __init__(self, name: str, clock: Clock) -> None:
        self.name = name
        self.clock = clock
        self.fence: Fence | None = None
        self.running = True
        self._dbs: dict[str, tuple[str, dict[str, Rows]]] = {}  # name -> (owner, tables)

    # -- set-up and inspection for tests (not part of the protocol) ----------------------------

    def create_database(self, database: str, owner: str, tables: dict[str, Rows]) -> None:
        self._dbs[database] = (owner, copy.deepcopy(tables))

    def put_row(self, database: str, table: str, key: str, row: dict[str, Any]) -> None:
        """A write by the database's own users (not the drill's): unfenced."""
        self._tables(database).setdefault(table, {})[key] = dict(row)

    def delete_row(self, database: str, table: str, key: str) -> None:
        self._tables(database).get(table, {}).pop(key, None)

    def rows(self, database: str, table: str) -> Rows:
        return copy.deepcopy(self._tables(database).get(table, {}))

    # -- the protocol ---------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.name} (in memory)"

    def _up(self) -> None:
        if not self.running:
            raise TargetUnreachable(f"database server {self.where} unreachable: stopped")

    def _tables(self, database: str) -> dict[str, Rows]:
        self._up()
        if database not in self._dbs:
            raise DatabaseMissing(f"database {database!r} does not exist on {self.where}")
        return self._dbs[database][1]

    def _may_write(self, database: str) -> None:
        if self.fence is not None:
            self.fence.check_database(self.name, database)

    def ping(self) -> str:
        self._up()
        return "PostgreSQL (fake)"

    def databases(self) -> list[str]:
        self._up()
        return sorted(self._dbs)

    def exists(self, database: str) -> bool:
        return database in self.databases()

    def owner(self, database: str) -> str:
        self._tables(database)
        return self._dbs[database][0]

    def tables(self, database: str) -> list[str]:
        return sorted(self._tables(database))

    def table_states(self, database: str) -> dict[str, TableState]:
        return {t: table_state(rows) for t, rows in sorted(self._tables(database).items())}

    def row_hashes(self, database: str, table: str) -> dict[str, str]:
        rows = self._tables(database)[table]
        return {k: hashlib.md5(row_text(r).encode()).hexdigest() for k, r in rows.items()}

    def query(self, database: str, statement: str,
              params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        m = _SELECT.match(statement)
        if m is None or params:
            raise Inconclusive(f"the fake database does not answer {statement!r}")
        cols = [c.strip() for c in m.group(1).split(",")]
        rows = self._tables(database).get(m.group(2), {})
        out = []
        for key in sorted(rows):
            row = {"id": key, **rows[key]}
            out.append(tuple(str(row[c[:-6]]) if c.endswith("::text") else row[c] for c in cols))
        return out

    def dump(self, database: str, path: Path) -> DumpInfo:
        tables = self._tables(database)
        created = self.clock.utc()
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"format": FORMAT, "database": database, "created": created.isoformat(),
               "tables": tables}
        path.write_text(json.dumps(doc, sort_keys=True, default=str))
        return DumpInfo(path, database, created, sha256_file(path), path.stat().st_size,
                        self.table_states(database))

    def drop(self, database: str) -> None:
        self._may_write(database)
        self._up()
        self._dbs.pop(database, None)

    def restore(self, database: str, path: Path, owner: str) -> None:
        self._may_write(database)
        if self.exists(database):
            raise Inconclusive(f"refusing to restore over the existing database {database!r} on "
                               f"{self.where}; drop it first")
        doc = self._read(path)
        self._dbs[database] = (owner, copy.deepcopy(doc["tables"]))

    def archive_created(self, path: Path) -> datetime:
        created = datetime.fromisoformat(str(self._read(path)["created"]))
        return created.replace(microsecond=0)

    def list_archive(self, path: Path) -> list[str]:
        return [f"1; 0 0 TABLE DATA public {t} drillbook" for t in sorted(self._read(path)["tables"])]

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ToolFailed(f"pg_restore of {path.name} failed: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ToolFailed(f"pg_restore: {path.name} is not a dump archive")
        return doc
