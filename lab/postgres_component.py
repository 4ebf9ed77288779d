"""The lab component for PostgreSQL: brings up the server (lab/postgres.py), creates and seeds
the annotations database, registers it with the database backup job and starts that job (``python
-m lab.postgres backup-loop``); stops both; reports their state; and writes the database target,
its dump store and the annotations asset into the lab's inventory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from lab.ceph import DaemonState
from lab.components import Progress
from lab.postgres import (
    ANNOTATIONS_ASSET,
    ANNOTATIONS_DB,
    ANNOTATOR_ROLE,
    BACKUP_PERIOD_S,
    DUMP_PREFIX,
    DUMP_STORE,
    PG_USER,
    SUPERUSER,
    TARGET,
    BackupJob,
    PostgresServer,
    backup_database,
    backup_lock,
    catalog,
    load_jobs,
    may_create_database,
    register_job,
    seed_annotations,
)
from lab.procs import live_pid, spawn_detached
from lab.stack import SECONDARY_BUCKET, Lab


class PostgresComponent:
    """PostgreSQL, the annotations database and the database backup job."""

    name = "postgres"

    def server(self, lab: Lab) -> PostgresServer:
        return PostgresServer(lab.root)

    @staticmethod
    def scheduler_pid_file(lab: Lab) -> Path:
        return lab.root / "postgres" / "backup-loop.pid"

    def scheduler_pid(self, lab: Lab) -> int | None:
        return live_pid(self.scheduler_pid_file(lab), b"lab.postgres", str(lab.root).encode())

    def up(self, lab: Lab, progress: Progress) -> None:
        server = self.server(lab)
        progress(f"lab: PostgreSQL on 127.0.0.1:{server.state.port} (as {PG_USER})")
        server.start()
        server.ensure_role(ANNOTATOR_ROLE)
        job = BackupJob(ANNOTATIONS_DB, f"{DUMP_PREFIX}{ANNOTATIONS_DB}/")
        if may_create_database(lab, server.db(), ANNOTATIONS_DB, catalog(lab, job), progress) \
                and server.ensure_database(ANNOTATIONS_DB, ANNOTATOR_ROLE):
            progress("lab: seeding the annotations database")
            seed_annotations(server.db(ANNOTATOR_ROLE))
        register_job(lab.root, job)
        if server.db().exists(ANNOTATIONS_DB) and not catalog(lab, job).has_records():
            rec = backup_database(lab, ANNOTATIONS_DB)
            progress(f"lab: first dump of {ANNOTATIONS_DB} at {rec.created.isoformat()}")
        self.start_scheduler(lab)

    def start_scheduler(self, lab: Lab) -> None:
        if self.scheduler_pid(lab) is not None:
            return
        pid = spawn_detached(
            [sys.executable, "-m", "lab.postgres", "backup-loop", "--lab-root", str(lab.root),
             "--period", str(BACKUP_PERIOD_S)],
            log=lab.root / "log" / "db-backups.log", env=dict(os.environ),
            cwd=Path(__file__).resolve().parent.parent)
        self.scheduler_pid_file(lab).write_text(str(pid))
        (lab.root / "postgres" / "backup-period").write_text(f"{BACKUP_PERIOD_S:g}")

    def stop_scheduler(self, lab: Lab) -> None:
        pid = self.scheduler_pid(lab)
        if pid is None:
            return
        # holding the lock: never cut a dump in half
        with backup_lock(lab.root), contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            if self.scheduler_pid(lab) is None:
                return
            time.sleep(0.1)

    def down(self, lab: Lab) -> None:
        self.stop_scheduler(lab)
        self.server(lab).stop()

    def status(self, lab: Lab) -> list[DaemonState]:
        server = self.server(lab)
        pid = server.pid()
        ready = pid is not None and server.ready()
        sched = self.scheduler_pid(lab)
        return [
            DaemonState("postgres", pid, ready,
                        f"127.0.0.1:{server.state.port} {'ready' if ready else 'down'}"),
            DaemonState("db-backups", sched, sched is not None,
                        f"pg_dump every {_period(lab)} s of "
                        f"{', '.join(load_jobs(lab.root)) or 'nothing'}"),
        ]

    def contribute(self, lab: Lab, inventory: dict[str, Any]) -> None:
        server = self.server(lab)
        s = lab.state
        inventory["targets"][TARGET] = {
            "kind": "postgres", "host": "127.0.0.1", "port": server.state.port,
            "user": SUPERUSER, "password": server.state.superuser_password, "drill_safe": True}
        inventory["targets"][DUMP_STORE] = {
            "kind": "s3", "endpoint": lab.ceph.endpoint, "region": "default",
            "access_key": s.backup_key, "secret_key": s.backup_secret, "drill_safe": False}
        inventory["assets"].append({
            "id": ANNOTATIONS_ASSET, "tier": 1, "kind": "annotation-db", "store": TARGET,
            "database": ANNOTATIONS_DB, "backup": DUMP_STORE, "bucket": SECONDARY_BUCKET,
            "prefix": f"{DUMP_PREFIX}{ANNOTATIONS_DB}/"})
        # dumps every BACKUP_PERIOD_S: a restore point is at most one period (plus a dump) old
        inventory["objectives"].setdefault("assets", {})[ANNOTATIONS_ASSET] = {
            "rto_s": 120, "rpo_s": max(300, 3 * BACKUP_PERIOD_S)}


def _period(lab: Lab) -> str:
    try:
        return (lab.root / "postgres" / "backup-period").read_text().strip()
    except OSError:
        return "?"
