"""The lab's PostgreSQL (Debian's server, no systemd), its annotations database and the database
backup job.

Layout under ``<lab>/postgres/``: ``data/`` (initdb), ``run/`` (the unix socket), ``log/``,
``state.json`` (port and role passwords), ``jobs.json`` (which databases the backup job dumps)
and the backup job's pid file and log.

Who runs it: PostgreSQL refuses to run as root, and the lab runs as root here, so the server runs
as ``nobody:nogroup`` through ``setpriv``. The lab directory may sit under a root-only directory
(pytest's ``/tmp/pytest-of-root`` is mode 0700), so the server keeps one capability,
CAP_DAC_READ_SEARCH, to reach its data directory through it; everything it writes (data, socket,
log) is owned by nobody. When the lab does not run as root, the server runs as the current user.
The server listens on 127.0.0.1 only, on a free port; password (SCRAM) authentication on TCP.

The annotations database is a real schema (annotators, items of the lab dataset, labels) with
seeded rows, owned by the ``annotator`` role. The backup job (``python -m lab.postgres
backup-loop``) runs while the lab runs: every period it takes a consistent ``pg_dump`` of each
registered database with the checksums of its tables taken in the same snapshot, and uploads both
to the secondary site's bucket with the backup service account (harness.targets.s3), so restore
points carry real timestamps.

The lab component that starts and stops all of this (and writes its part of the lab's
inventory) is :mod:`lab.postgres_component`; ``python -m lab.postgres backup-loop`` stays here.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import pwd
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from psycopg import sql

from harness.errors import DrillbookError
from harness.inventory import PostgresTarget, Secret
from harness.targets.database import Database, DumpCatalog, DumpRecord
from harness.targets.s3 import S3Store
from lab.components import Progress
from lab.procs import free_port, write_json
from lab.stack import SECONDARY_BUCKET, Lab

PG_USER = "nobody"
PG_GROUP = "nogroup"
SUPERUSER = "postgres"
ANNOTATIONS_DB = "annotations"
ANNOTATOR_ROLE = "annotator"
DUMP_PREFIX = "pgdump/"
TARGET = "postgres"
DUMP_STORE = "dump-store"
ANNOTATIONS_ASSET = "annotations-db"
#: How often the backup job dumps each database while the lab runs (seconds).
BACKUP_PERIOD_S = float(os.environ.get("DRILLBOOK_DB_BACKUP_PERIOD_S", "60"))
#: Restore points kept per database.
BACKUP_KEEP = 30
SEED_ITEMS = 120
SEED_ANNOTATORS = ("ana", "bo", "chen")
LABELS = ("cat", "dog", "bird", "other")

SCHEMA = """
CREATE TABLE annotators (
    id          serial PRIMARY KEY,
    handle      text NOT NULL UNIQUE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE items (
    id               text PRIMARY KEY,
    dataset          text NOT NULL,
    dataset_version  text NOT NULL,
    uri              text NOT NULL,
    sha256           char(64) NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE labels (
    id            bigserial PRIMARY KEY,
    item_id       text NOT NULL REFERENCES items(id),
    annotator_id  integer NOT NULL REFERENCES annotators(id),
    label         text NOT NULL,
    confidence    real NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX labels_item ON labels(item_id);
"""


class PostgresError(DrillbookError):
    pass


@dataclass
class PgState:
    port: int
    superuser_password: str
    role_passwords: dict[str, str] = field(default_factory=dict)


def _run_as_pg() -> list[str]:
    """The prefix that runs a command as the server's user (see the module docstring)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={PG_USER}", f"--regid={PG_GROUP}", "--clear-groups",
            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]


def _pg_bin(name: str) -> str:
    """A server binary: Debian keeps them in /usr/lib/postgresql/<major>/bin, off the PATH."""
    found = shutil.which(name)
    if found:
        return found
    for major in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (major / name).exists():
            return str(major / name)
    raise PostgresError(f"{name} not found: install the Debian package postgresql "
                        f"(`make lab-deps` does)")


class PostgresServer:
    """One PostgreSQL cluster rooted in ``<lab>/postgres``."""

    def __init__(self, lab_root: Path) -> None:
        self.root = lab_root / "postgres"
        self.data = self.root / "data"
        self.run_dir = self.root / "run"
        self.log = self.root / "log" / "postgres.log"
        self.state_path = self.root / "state.json"
        if self.state_path.exists():
            self.state = PgState(**json.loads(self.state_path.read_text()))
        else:
            self.state = PgState(free_port(), secrets.token_urlsafe(18))

    def save(self) -> None:
        write_json(self.state_path, asdict(self.state), private=True)

    def target(self, user: str = SUPERUSER) -> PostgresTarget:
        pw = self.state.superuser_password if user == SUPERUSER else \
            self.state.role_passwords[user]
        return PostgresTarget(TARGET, "127.0.0.1", self.state.port, user, Secret(pw),
                              drill_safe=True)

    def db(self, user: str = SUPERUSER) -> Database:
        return Database(self.target(user))

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam(PG_USER)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _pg(self, argv: list[str], what: str) -> str:
        proc = subprocess.run(_run_as_pg() + argv, capture_output=True, text=True, check=False,
                              cwd="/", timeout=180)
        if proc.returncode != 0:
            raise PostgresError(f"{what} failed (exit {proc.returncode}): "
                                f"{(proc.stderr or proc.stdout).strip()[-1500:]}\n"
                                f"{_tail(self.log)}")
        return proc.stdout

    def init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        for d in (self.root, self.data, self.run_dir, self.log.parent):
            d.mkdir(parents=True, exist_ok=True)
        for d in (self.data, self.run_dir, self.log.parent):
            self._chown(d)
        os.chmod(self.data, 0o700)
        self.save()
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(self.state.superuser_password + "\n")
        self._chown(pwfile)
        os.chmod(pwfile, 0o600)
        try:
            self._pg([_pg_bin("initdb"), "-D", str(self.data), "-U", SUPERUSER,
                      f"--pwfile={pwfile}", "--auth-local=peer", "--auth-host=scram-sha-256",
                      "--encoding=UTF8", "--locale=C", "--no-instructions"], "initdb")
        finally:
            pwfile.unlink(missing_ok=True)
        conf = self.data / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write("\n# drillbook lab\ninclude_if_exists 'drillbook.conf'\n")

    def _write_conf(self) -> None:
        conf = self.data / "drillbook.conf"
        conf.write_text(
            f"listen_addresses = '127.0.0.1'\nport = {self.state.port}\n"
            f"unix_socket_directories = '{self.run_dir}'\nmax_connections = 40\n"
            "shared_buffers = 32MB\nlog_min_messages = warning\n")
        self._chown(conf)

    def pid(self) -> int | None:
        try:
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            return None
        return pid if str(self.data).encode() in cmdline else None

    def ready(self) -> bool:
        proc = subprocess.run([_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p",
                               str(self.state.port), "-t", "2"], capture_output=True, check=False)
        return proc.returncode == 0

    def start(self) -> None:
        self.init()
        if self.pid() is not None and self.ready():
            return
        self._write_conf()
        self._pg([_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "start"], "pg_ctl start")
        deadline = time.monotonic() + 30
        while not self.ready():
            if time.monotonic() > deadline:
                raise PostgresError(f"PostgreSQL did not accept connections\n{_tail(self.log)}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.pid() is None:
            return
        with contextlib.suppress(PostgresError):
            self._pg([_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "30",
                      "stop"], "pg_ctl stop")
        pid = self.pid()
        if pid is not None:  # pg_ctl gave up: end it by its own pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def ensure_role(self, name: str) -> None:
        """A login role with a password (kept in state.json); created when missing."""
        if name not in self.state.role_passwords:
            self.state.role_passwords[name] = secrets.token_urlsafe(18)
            self.save()
        pw = self.state.role_passwords[name]
        db = self.db()
        exists = db.query("postgres", "SELECT 1 FROM pg_roles WHERE rolname = %s", (name,))
        stmt = sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}") if exists else \
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
        with db.connect() as conn:
            conn.execute(stmt.format(sql.Identifier(name), sql.Literal(pw)))

    def ensure_database(self, name: str, owner: str) -> bool:
        """Create the database when missing; True if it was created."""
        db = self.db()
        if db.exists(name):
            return False
        db.create(name, owner)
        return True


def may_create_database(lab: Lab, db: Database, name: str, dumps: DumpCatalog,
                        progress: Progress) -> bool:
    """A missing database is created (and seeded) only when no drill holds it and no dump of
    it exists: otherwise it is a loss to recover, not a lab to set up (lab/keep.py)."""
    from harness.blast import Touch
    from lab.keep import may_generate, pg_leases
    if db.exists(name):
        return True
    records = dumps.records() if dumps.has_records() else []
    backup = f"dump {records[-1].identity} in {dumps.location}" if records else None
    return may_generate(f"the database {name!r}", pg_leases(db, Touch.database(TARGET, name)),
                        backup, False, progress)


# --- the annotations database ---------------------------------------------------------------------


def seed_annotations(db: Database) -> None:
    """Schema and seeded rows (deterministic: seed 7): the lab dataset's items, three annotators,
    two labels per item."""
    rng = random.Random(7)
    with db.connect(ANNOTATIONS_DB, autocommit=False) as conn:
        conn.execute(SCHEMA.encode())
        for handle in SEED_ANNOTATORS:
            conn.execute("INSERT INTO annotators (handle, name) VALUES (%s, %s)",
                         (handle, f"Annotator {handle.title()}"))
        for i in range(SEED_ITEMS):
            item = f"lab-dataset/v1/item-{i:04d}"
            digest = rng.randbytes(32).hex()
            conn.execute("INSERT INTO items (id, dataset, dataset_version, uri, sha256) "
                         "VALUES (%s, 'lab-dataset', 'v1', %s, %s)",
                         (item, f"s3://drillbook-datasets/lab-dataset/v1/{i:04d}.json", digest))
            for annotator in rng.sample(range(1, len(SEED_ANNOTATORS) + 1), 2):
                conn.execute("INSERT INTO labels (item_id, annotator_id, label, confidence) "
                             "VALUES (%s, %s, %s, %s)",
                             (item, annotator, rng.choice(LABELS), round(rng.random(), 3)))
        conn.commit()


def write_annotations(db: Database, count: int, *, tag: str = "late") -> list[int]:
    """New labels, as an annotator working now would write them; returns their ids."""
    ids: list[int] = []
    with db.connect(ANNOTATIONS_DB) as conn:
        for i in range(count):
            row = conn.execute(
                "INSERT INTO labels (item_id, annotator_id, label, confidence) "
                "SELECT id, 1, %s, 0.5 FROM items ORDER BY id OFFSET %s LIMIT 1 RETURNING id",
                (f"{tag}-{i}", i % SEED_ITEMS)).fetchone()
            assert row is not None
            ids.append(int(row[0]))
    return ids


# --- the backup job ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupJob:
    database: str
    prefix: str


def jobs_path(lab_root: Path) -> Path:
    return lab_root / "postgres" / "jobs.json"


def register_job(lab_root: Path, job: BackupJob) -> None:
    """Add a database to what the backup job dumps (it reads this file every cycle)."""
    path = jobs_path(lab_root)
    jobs = load_jobs(lab_root)
    jobs[job.database] = job
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: asdict(v) for k, v in jobs.items()}, indent=2))
    os.replace(tmp, path)


def load_jobs(lab_root: Path) -> dict[str, BackupJob]:
    try:
        raw = json.loads(jobs_path(lab_root).read_text())
    except (OSError, ValueError):
        return {}
    return {k: BackupJob(**v) for k, v in raw.items()}


def catalog(lab: Lab, job: BackupJob) -> DumpCatalog:
    return DumpCatalog(S3Store(lab.backup_store_target()), SECONDARY_BUCKET, job.prefix)


@contextlib.contextmanager
def backup_lock(lab_root: Path) -> Iterator[None]:
    """One dump at a time per lab: the scheduled job and a manual backup never overlap."""
    path = lab_root / "postgres" / "backup.lock"
    with path.open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def backup_database(lab: Lab, database: str) -> DumpRecord:
    """Dump one database now and publish it to the secondary site; returns the restore point."""
    job = load_jobs(lab.root)[database]
    server = PostgresServer(lab.root)
    with backup_lock(lab.root), tempfile.TemporaryDirectory(dir=server.root) as tmp:
        info = server.db().dump(database, Path(tmp) / f"{database}.dump")
        cat = catalog(lab, job)
        record = cat.publish(info)
        cat.prune(BACKUP_KEEP)
        _stamp_path(lab.root, database).write_text(str(time.time()))
    return record


def _stamp_path(lab_root: Path, database: str) -> Path:
    return lab_root / "postgres" / f"last-dump.{database}"


def seconds_since_dump(lab_root: Path, database: str) -> float:
    """Seconds since the last dump of a database by anyone (the job or a manual backup)."""
    try:
        return time.time() - float(_stamp_path(lab_root, database).read_text())
    except (OSError, ValueError):
        return float("inf")


def backup_loop(lab_root: Path, period_s: float) -> None:
    """The scheduled job: dump each registered database when its last dump (by this job or a
    manual backup) is ``period_s`` old. It re-reads the lab's state each cycle, so a rotated
    backup key is picked up; a failed dump is logged and retried next period (a broken backup is
    what drills exist to find, not a reason to stop)."""
    tried: dict[str, float] = {}
    while True:
        lab = Lab(lab_root)
        for name in load_jobs(lab_root):
            if seconds_since_dump(lab_root, name) < period_s or \
                    time.monotonic() - tried.get(name, -1e9) < period_s:
                continue
            tried[name] = time.monotonic()
            try:
                rec = backup_database(lab, name)
                print(f"{datetime.now(UTC).isoformat()} dumped {name}: {rec.identity} "
                      f"({rec.size} bytes)", flush=True)
            except Exception as exc:  # noqa: BLE001 - keep running; the log tells what failed
                print(f"{datetime.now(UTC).isoformat()} dump of {name} failed: "
                      f"{type(exc).__name__}: {exc}", flush=True)
        time.sleep(1.0)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.postgres")
    sub = parser.add_subparsers(dest="command", required=True)
    loop = sub.add_parser("backup-loop", help="dump the lab's databases periodically")
    loop.add_argument("--lab-root", type=Path, required=True)
    loop.add_argument("--period", type=float, default=BACKUP_PERIOD_S)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    backup_loop(args.lab_root, args.period)
    return 0


if __name__ == "__main__":
    sys.exit(main())
