"""The database adapter: PostgreSQL, through psycopg for queries and pg_dump/pg_restore for copies.

What the drills need from a database: is it reachable, which databases exist, how many rows each
table holds and a content checksum of each table (rows in primary-key order), a consistent dump
whose checksums were computed in the very snapshot the dump holds, and drop/restore.

Error translation: a server that cannot be reached or refuses the credentials raises
:class:`~harness.errors.TargetUnreachable`; a database that does not exist raises
:class:`DatabaseMissing`; pg_dump or pg_restore missing or failing raises :class:`ToolFailed`.
All three are :class:`~harness.errors.Inconclusive`: the check could not run. The password goes
to the client tools through the environment (``PGPASSWORD``), never on a command line.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from harness.blast import Fence
from harness.errors import Inconclusive, TargetUnreachable
from harness.inventory import PostgresTarget

if TYPE_CHECKING:
    # the protocols module imports this one's records
    from harness.targets.protocols import ObjectStore

#: The format of a dump's manifest (the JSON object stored beside each archive).
DUMP_FORMAT = "drillbook-pgdump/1"
#: The maintenance database every PostgreSQL cluster has; used for CREATE/DROP DATABASE.
MAINTENANCE_DB = "postgres"
_TAIL = 1500
#: pg_restore --list's header line naming the archive's creation time (printed with TZ=UTC)
_ARCHIVE_CREATED = re.compile(r"^; Archive created at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)",
                              re.MULTILINE)


class DatabaseMissing(Inconclusive):
    """The named database does not exist on the server."""


class ToolFailed(Inconclusive):
    """pg_dump / pg_restore is missing or exited non-zero."""


@dataclass(frozen=True)
class TableState:
    """A table's row count and the MD5 of its rows' text forms, in primary-key order."""

    rows: int
    checksum: str

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "checksum": self.checksum}


@dataclass(frozen=True)
class DumpInfo:
    """A pg_dump archive and what it holds: the checksums were taken in the dump's own snapshot,
    and ``created`` is the snapshot's statement time, so nothing committed after it is in it."""

    path: Path
    database: str
    created: datetime
    sha256: str
    size: int
    tables: dict[str, TableState]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Database:
    """One PostgreSQL server with one role's credentials."""

    def __init__(self, target: PostgresTarget, *, connect_timeout: int = 5) -> None:
        self.target = target
        self.connect_timeout = connect_timeout
        #: set by the runner for the length of a drill: writes outside it are refused
        self.fence: Fence | None = None

    def _may_write(self, database: str) -> None:
        if self.fence is not None:
            self.fence.check_database(self.target.name, database)

    # -- connections ---------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.target.name} ({self.target.host}:{self.target.port})"

    @contextmanager
    def connect(self, database: str = MAINTENANCE_DB, *,
                autocommit: bool = True) -> Iterator[psycopg.Connection[Any]]:
        t = self.target
        try:
            conn = psycopg.connect(host=t.host, port=t.port, user=t.user,
                                   password=t.password.value, dbname=database,
                                   connect_timeout=self.connect_timeout, autocommit=autocommit,
                                   application_name="drillbook")
        except psycopg.OperationalError as exc:
            text = str(exc)
            if "does not exist" in text and f'"{database}"' in text:
                raise DatabaseMissing(f"database {database!r} does not exist on "
                                      f"{self.where}") from exc
            raise TargetUnreachable(f"database server {self.where} unreachable: "
                                    f"{text.strip().splitlines()[-1]}") from exc
        try:
            yield conn
        except psycopg.OperationalError as exc:
            raise TargetUnreachable(f"database server {self.where} failed during a query: "
                                    f"{str(exc).strip()}") from exc
        finally:
            conn.close()

    def ping(self) -> str:
        """The server's version string; raises TargetUnreachable when it does not answer."""
        with self.connect() as conn:
            row = conn.execute("SELECT version()").fetchone()
        return str(row[0]) if row else ""

    def databases(self) -> list[str]:
        with self.connect() as conn:
            rows = conn.execute("SELECT datname FROM pg_database WHERE NOT datistemplate "
                                "ORDER BY datname").fetchall()
        return [str(r[0]) for r in rows]

    def exists(self, database: str) -> bool:
        return database in self.databases()

    def owner(self, database: str) -> str:
        with self.connect() as conn:
            row = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database "
                               "WHERE datname = %s", (database,)).fetchone()
        if row is None:
            raise DatabaseMissing(f"database {database!r} does not exist on {self.where}")
        return str(row[0])

    # -- content -------------------------------------------------------------------------------

    def tables(self, database: str) -> list[str]:
        with self.connect(database) as conn:
            return _tables(conn)

    def table_states(self, database: str) -> dict[str, TableState]:
        """Row count and content checksum of every user table, read in one snapshot."""
        with self.connect(database, autocommit=False) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            out = _table_states(conn)
            conn.rollback()
        return out

    def row_hashes(self, database: str, table: str) -> dict[str, str]:
        """Primary key (as text) -> MD5 of the row's text form, for counting what differs."""
        with self.connect(database) as conn:
            key = _key_expr(conn, table)
            q = sql.SQL("SELECT ({key})::text, md5(t::text) FROM {tbl} AS t").format(
                key=key, tbl=sql.Identifier(*table.split(".", 1)))
            return {str(k): str(v) for k, v in conn.execute(q).fetchall()}

    def query(self, database: str, statement: str,
              params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """A read query; for scenario checks such as "rows newer than the restore point"."""
        with self.connect(database) as conn:
            return list(conn.execute(statement.encode(), params).fetchall())

    def execute(self, database: str, statement: str, params: tuple[Any, ...] = ()) -> int:
        """A write statement in its own transaction; returns the rows affected."""
        self._may_write(database)
        with self.connect(database) as conn:
            cur = conn.execute(statement.encode(), params)
            return cur.rowcount

    # -- copies --------------------------------------------------------------------------------

    def dump(self, database: str, path: Path) -> DumpInfo:
        """pg_dump (custom format) of a database, and its tables' checksums taken in the same
        snapshot (exported to pg_dump), so the checksums describe exactly what the file holds."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect(database, autocommit=False) as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            # the first statement takes the snapshot; statement_timestamp() is its start, so the
            # dump holds every transaction committed before `created` (RPO is never understated)
            row = conn.execute("SELECT pg_export_snapshot(), statement_timestamp()").fetchone()
            assert row is not None
            snapshot, created = str(row[0]), row[1]
            tables = _table_states(conn)
            self._tool(["pg_dump", "--format=custom", f"--snapshot={snapshot}",
                        f"--file={path}", f"--dbname={database}"], f"pg_dump of {database}")
            conn.rollback()
        return DumpInfo(path, database, created, sha256_file(path), path.stat().st_size, tables)

    def drop(self, database: str) -> None:
        """DROP DATABASE, ending the sessions still connected to it (PostgreSQL 13+)."""
        self._may_write(database)
        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(database)))

    def create(self, database: str, owner: str) -> None:
        self._may_write(database)
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(database), sql.Identifier(owner)))

    def restore(self, database: str, path: Path, owner: str) -> None:
        """Create the database empty and pg_restore an archive into it (owners and grants as
        the archive records them). Refuses to overwrite an existing database."""
        self._may_write(database)
        if self.exists(database):
            raise Inconclusive(f"refusing to restore over the existing database {database!r} on "
                               f"{self.where}; drop it first")
        self.create(database, owner)
        self._tool(["pg_restore", "--exit-on-error", "--single-transaction",
                    f"--dbname={database}", str(path)], f"pg_restore of {database}")

    def archive_created(self, path: Path) -> datetime:
        """When pg_dump made the archive, from its own header (``pg_restore --list`` prints
        "Archive created at ..."): one-second resolution, written in the dump host's local time,
        read here as UTC (drillbook's and the lab's dumps run with TZ=UTC; see the README)."""
        out = self._tool(["pg_restore", "--list", str(path)], "pg_restore --list", connect=False)
        match = _ARCHIVE_CREATED.search(out)
        if match is None:
            raise ToolFailed(f"pg_restore --list of {path.name} printed no 'Archive created at' "
                             f"header: not a pg_dump custom-format archive?")
        return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)

    def list_archive(self, path: Path) -> list[str]:
        """The archive's table of contents (pg_restore --list): proves the file is readable."""
        out = self._tool(["pg_restore", "--list", str(path)], "pg_restore --list", connect=False)
        return [line for line in out.splitlines() if line and not line.startswith(";")]

    def _tool(self, argv: list[str], what: str, *, connect: bool = True) -> str:
        exe = shutil.which(argv[0])
        if exe is None:
            raise ToolFailed(f"{argv[0]} is not installed: cannot run {what}")
        t = self.target
        # TZ=UTC: pg_dump writes its header's time in local time, pg_restore reads it back in
        # local time; both in UTC, the header states an instant
        env = dict(os.environ, PGCONNECT_TIMEOUT=str(self.connect_timeout), TZ="UTC")
        if connect:
            env.update(PGHOST=t.host, PGPORT=str(t.port), PGUSER=t.user,
                       PGPASSWORD=t.password.value)
        proc = subprocess.run([exe, *argv[1:]], env=env, capture_output=True, text=True,
                              check=False, timeout=3600)
        if proc.returncode != 0:
            err = proc.stderr.strip()[-_TAIL:]
            if "could not connect" in err or "Connection refused" in err:
                raise TargetUnreachable(f"{what}: database server {self.where} unreachable: "
                                        f"{err}")
            raise ToolFailed(f"{what} failed (exit {proc.returncode}): {err}")
        return proc.stdout


def _tables(conn: psycopg.Connection[Any]) -> list[str]:
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2").fetchall()
    return [str(c) if s == "public" else f"{s}.{c}" for s, c in rows]


def _key_expr(conn: psycopg.Connection[Any], table: str) -> sql.Composable:
    """The ORDER BY / key expression: the primary key's columns, or the whole row without one."""
    rows = conn.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
        "ORDER BY array_position(i.indkey, a.attnum)", (_qualified(table),)).fetchall()
    if not rows:
        return sql.SQL("t::text")
    cols = [sql.SQL("t.{}").format(sql.Identifier(str(r[0]))) for r in rows]
    return sql.SQL("ROW({})").format(sql.SQL(", ").join(cols)) if len(cols) > 1 else cols[0]


def _qualified(table: str) -> str:
    parts = table.split(".", 1)
    return ".".join(f'"{p}"' for p in parts)


def _table_states(conn: psycopg.Connection[Any]) -> dict[str, TableState]:
    out: dict[str, TableState] = {}
    for table in _tables(conn):
        key = _key_expr(conn, table)
        # SHA-256 of the rows' SHA-256s in key order: the evidence's integrity checks are SHA-256
        q = sql.SQL("SELECT count(*), encode(sha256(convert_to(coalesce(string_agg("
                    "encode(sha256(convert_to(t::text, 'UTF8')), 'hex'), '' ORDER BY {key}), ''), "
                    "'UTF8')), 'hex') FROM {tbl} AS t").format(
            key=key, tbl=sql.Identifier(*table.split(".", 1)))
        row = conn.execute(q).fetchone()
        assert row is not None
        out[table] = TableState(int(row[0]), str(row[1]))
    return out


# --- dumps kept in an object store ---------------------------------------------------------------


@dataclass(frozen=True)
class DumpRecord:
    """One restore point in a catalog: the archive's key and what its manifest says it holds."""

    key: str
    manifest_key: str
    database: str
    created: datetime
    sha256: str
    size: int
    tables: dict[str, TableState]

    @property
    def identity(self) -> str:
        return self.key.rsplit("/", 1)[-1]


class DumpCatalog:
    """pg_dump archives in a bucket under a prefix: ``<stamp>.dump`` and its ``<stamp>.json``
    manifest, written after the archive so a manifest always names an archive that exists."""

    def __init__(self, store: ObjectStore, bucket: str, prefix: str) -> None:
        self.store = store
        self.bucket = bucket
        self.prefix = prefix

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def publish(self, info: DumpInfo) -> DumpRecord:
        stamp = info.created.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        key, manifest_key = f"{self.prefix}{stamp}.dump", f"{self.prefix}{stamp}.json"
        with info.path.open("rb") as fh:
            self.store.upload_stream(self.bucket, key, fh)
        doc = {"format": DUMP_FORMAT, "database": info.database, "archive": key,
               "created_utc": info.created.astimezone(UTC).isoformat(), "sha256": info.sha256,
               "size": info.size, "tables": {k: v.to_json() for k, v in info.tables.items()}}
        self.store.put_bytes(self.bucket, manifest_key, json.dumps(doc, indent=1).encode())
        return _record(doc, manifest_key)

    def has_records(self) -> bool:
        """Whether any restore point exists (one listing, no manifest read)."""
        return any(k.endswith(".json") for k in self.store.list_keys(self.bucket, self.prefix))

    def records(self) -> list[DumpRecord]:
        """Every restore point, oldest first."""
        out = []
        for key in self.store.list_keys(self.bucket, self.prefix):
            if not key.endswith(".json"):
                continue
            raw = self.store.read_bytes(self.bucket, key)
            if raw is None:
                continue  # pruned between the listing and the read
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("format") == DUMP_FORMAT:
                out.append(_record(doc, key))
        return sorted(out, key=lambda r: r.created)

    def fetch(self, record: DumpRecord, dest: Path) -> str:
        """Download an archive; returns the SHA-256 of what arrived (the caller compares it)."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        body = self.store.open(self.bucket, record.key)
        with dest.open("wb") as fh:
            shutil.copyfileobj(body, fh, 1 << 20)
        return sha256_file(dest)

    def prune(self, keep: int) -> int:
        """Delete all but the newest ``keep`` restore points; returns how many went."""
        old = self.records()[:-keep] if keep > 0 else []
        for rec in old:
            self.store.delete(self.bucket, rec.manifest_key)
            self.store.delete(self.bucket, rec.key)
        return len(old)


def _record(doc: dict[str, Any], manifest_key: str) -> DumpRecord:
    return DumpRecord(
        key=str(doc["archive"]), manifest_key=manifest_key, database=str(doc["database"]),
        created=datetime.fromisoformat(str(doc["created_utc"])), sha256=str(doc["sha256"]),
        size=int(doc["size"]),
        tables={k: TableState(int(v["rows"]), str(v["checksum"]))
                for k, v in dict(doc["tables"]).items()})
