"""Runbook steps for a PostgreSQL database restored from the pg_dump archives in an object store.

What every "a database is gone" drill does, as functions of the drill context and a
:class:`DbState`: before the fault, prove the newest dump restores (into a scratch database whose
tables must match the checksums the backup job took in the dump's own snapshot) and take a proven
safety copy; the recovery (locate the newest dump made before the fault, pull it and check its
SHA-256, restore the database, verify its tables); the independent verification (the database
holds exactly the newest restore point, rows lost counted against the baseline); and the revert
(the safety copy put back when the database is not as found).

Step factories return :class:`~harness.scenario.RunbookStep` whose ``run`` is a
``functools.partial`` of the step function with ``(ctx, state)``: an override (``run_drill(...,
overrides=...)``) that needs the drill's state reads it from ``original.args[1]``.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from harness import lease
from harness.blast import Touch
from harness.context import DrillContext
from harness.errors import Inconclusive, StepFailed
from harness.model import RESTORE_POINT_CLOCK_TOLERANCE_S, RestorePoint, iso
from harness.runbook.timeline import injected_at
from harness.scenario import RunbookStep
from harness.targets.database import DumpCatalog, DumpInfo, DumpRecord, TableState, sha256_file
from harness.targets.protocols import DatabaseAPI

#: At most this many lost keys are listed in the evidence (all are counted).
LIST_LIMIT = 50

#: Scenario-specific detail of a loss: (restore point, per-table loss) -> evidence fields.
ExplainLoss = Callable[[DumpRecord, dict[str, "TableLoss"]], dict[str, Any]]


@dataclass
class DbState:
    """What a database drill learns in one phase and uses in a later one."""

    owner: str = ""
    #: the safety copy (a pg_dump of the database as found); revert puts it back
    safety: DumpInfo | None = None
    base_tables: dict[str, TableState] = field(default_factory=dict)
    base_rows: dict[str, dict[str, str]] = field(default_factory=dict)
    #: the dump the recovery restores, and where it was downloaded
    chosen: DumpRecord | None = None
    pulled: Path | None = None
    #: restore points already reported as passed over (one deviation each)
    noted: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class TableLoss:
    baseline_rows: int
    restored_rows: int
    lost: list[str]  # keys in the baseline, missing after the restore
    changed: list[str]  # keys whose row differs from the baseline
    resurrected: list[str]  # keys absent from the baseline, present after the restore

    def to_json(self) -> dict[str, Any]:
        return {"baseline_rows": self.baseline_rows, "restored_rows": self.restored_rows,
                "lost": len(self.lost), "changed": len(self.changed),
                "resurrected": len(self.resurrected), "lost_keys": self.lost[:LIST_LIMIT]}


# -- where things are ---------------------------------------------------------------------------


def database(ctx: DrillContext) -> DatabaseAPI:
    return ctx.adapters.postgres(ctx.asset.store)


def database_name(ctx: DrillContext) -> str:
    name = ctx.asset.database
    assert name is not None  # the inventory requires it for database assets
    return name


def dump_catalog(ctx: DrillContext) -> DumpCatalog:
    a = ctx.asset
    assert a.backup is not None
    return DumpCatalog(ctx.adapters.s3(a.backup), a.bucket, a.prefix)


def scratch_dir(ctx: DrillContext) -> Path:
    return ctx.work_dir / ctx.drill_id


def proof_touches(ctx: DrillContext) -> list[Touch]:
    """The throwaway databases the restorability proof creates and drops."""
    return [Touch.database(ctx.asset.store, "drillbook_proof_*")]


def newest_dump_before(ctx: DrillContext, state: DbState, when: datetime) -> DumpRecord:
    """The newest dump whose manifest dates it before ``when``, give or take the documented
    clock tolerance; a dump dated later is passed over with a deviation."""
    bound = when + timedelta(seconds=RESTORE_POINT_CLOCK_TOLERANCE_S)
    catalog = dump_catalog(ctx)
    records = catalog.records()
    for r in records:
        if r.created > bound and r.key not in state.noted:
            state.noted.add(r.key)
            ctx.deviation(
                f"dump {r.identity} is dated {iso(r.created)}, "
                f"{(r.created - when).total_seconds():.1f} s after {iso(when)}, beyond the "
                f"clock tolerance of {RESTORE_POINT_CLOCK_TOLERANCE_S:g} s: not used as a "
                f"restore point")
    before = [r for r in records if r.created <= bound]
    if not before:
        raise Inconclusive(f"no restore point: no dump of {database_name(ctx)} made before "
                           f"{iso(when)} in {catalog.location}")
    return before[-1]


def fault_time(ctx: DrillContext) -> datetime:
    return injected_at(ctx, "nothing to restore to before")


# -- before the fault -----------------------------------------------------------------------------


def require_database(ctx: DrillContext, state: DbState) -> None:
    """Preflight: the server answers, the database exists, and the newest dump restores."""
    db, name = database(ctx), database_name(ctx)
    db.ping()
    if not db.exists(name):
        raise Inconclusive(f"database {name!r} does not exist on {db.where}: nothing to drill")
    state.owner = db.owner(name)
    prove_restorable(ctx, state, newest_dump_before(ctx, state, ctx.clock.utc()))


def prove_restorable(ctx: DrillContext, state: DbState, rec: DumpRecord) -> None:
    """Download the dump, check its hash, restore it into a scratch database and compare its
    tables with the manifest. Anything short of that: refuse to drop (INCONCLUSIVE)."""
    db = database(ctx)
    path = scratch_dir(ctx) / "proof.dump"
    sha = dump_catalog(ctx).fetch(rec, path)
    if sha != rec.sha256:
        raise Inconclusive(f"no restorable copy: dump {rec.identity} has SHA-256 {sha[:12]}, "
                           f"its manifest says {rec.sha256[:12]}; refusing to drop anything")
    proof = f"drillbook_proof_{secrets.token_hex(4)}"
    try:
        db.restore(proof, path, state.owner)
        got = db.table_states(proof)
    finally:
        db.drop(proof)
        path.unlink(missing_ok=True)
    if got != rec.tables:
        bad = sorted(t for t in set(got) | set(rec.tables) if got.get(t) != rec.tables.get(t))
        raise Inconclusive(f"no restorable copy: dump {rec.identity} restores to tables that "
                           f"differ from its manifest ({', '.join(bad[:5])}); refusing to "
                           f"drop anything")
    ctx.event("restorable.proven", source="pg_dump", dump=rec.identity,
              dump_utc=iso(rec.created), tables=len(got),
              rows=sum(t.rows for t in got.values()))


def take_safety_copy(ctx: DrillContext, state: DbState) -> None:
    """Baseline: a pg_dump of the database as found, proven readable; its snapshot's checksums
    are the baseline, and every row's hash is kept for counting what a restore loses."""
    db, name = database(ctx), database_name(ctx)
    path = (scratch_dir(ctx) / "safety.dump").resolve()
    # recorded in the drill's leases before and after it is taken: `drillbook recover`
    # restores it if this process dies
    where = {"target": ctx.asset.store, "database": name, "owner": state.owner,
             "host": lease.this_host()}
    lease.record_safety_copy(ctx.drill_id, "pg-dump", str(path), **where)
    state.safety = safety = db.dump(name, path)
    lease.record_safety_copy(ctx.drill_id, "pg-dump", str(path), **where, sha256=safety.sha256,
                             tables={k: v.to_json() for k, v in safety.tables.items()})
    state.base_tables = safety.tables
    state.base_rows = {t: db.row_hashes(name, t) for t in state.base_tables}
    if {t: len(r) for t, r in state.base_rows.items()} != \
            {t: s.rows for t, s in state.base_tables.items()}:
        raise Inconclusive(f"{name} changed while the baseline was read: its loss could not be "
                           f"accounted for")
    ctx.event("safety.copy.taken", path=str(safety.path), bytes=safety.size,
              sha256=safety.sha256, tables=len(state.base_tables),
              rows=sum(t.rows for t in state.base_tables.values()))
    _prove_safety_copy(ctx, state, safety)


def _prove_safety_copy(ctx: DrillContext, state: DbState, safety: DumpInfo) -> None:
    """The dump on disk is the one pg_dump wrote (its SHA-256 read back) and a readable archive
    that holds every table of the baseline; otherwise stop with nothing touched."""
    if sha256_file(safety.path) != safety.sha256:
        raise Inconclusive(f"the safety copy {safety.path} changed after it was written; "
                           f"nothing was touched")
    listed = "\n".join(database(ctx).list_archive(safety.path))
    missing = [t for t in state.base_tables if t.rsplit(".", 1)[-1] not in listed]
    if missing:
        raise Inconclusive(f"the safety copy {safety.path} lacks table(s) "
                           f"{', '.join(missing[:5])}; nothing was touched")
    ctx.event("safety.copy.proven", method="sha256 read back, pg_restore --list",
              tables=len(state.base_tables))


def discard_safety_copy(ctx: DrillContext, state: DbState) -> None:
    """Cleanup after an early stop: nothing was dropped, so the copies go."""
    if state.safety is not None:
        state.safety.path.unlink(missing_ok=True)
        ctx.event("safety.copy.discarded", reason="the drill ended before inject")
    if scratch_dir(ctx).is_dir():
        shutil.rmtree(scratch_dir(ctx), ignore_errors=True)


# -- the fault ----------------------------------------------------------------------------------


def drop_database(ctx: DrillContext) -> None:
    db, name = database(ctx), database_name(ctx)
    db.drop(name)
    ctx.event("fault.database.dropped", database=name, server=db.where)


def database_gone(ctx: DrillContext) -> bool:
    return not database(ctx).exists(database_name(ctx))


# -- the recovery ---------------------------------------------------------------------------------


def use_dump(ctx: DrillContext, state: DbState, rec: DumpRecord) -> None:
    """Record the dump the recovery restores (also what a custom locator calls)."""
    state.chosen = rec
    ctx.findings.restore_point = RestorePoint(
        "pg-dump", rec.identity, rec.created, f"s3://{dump_catalog(ctx).bucket}/{rec.key}")


def _locate(ctx: DrillContext, state: DbState) -> None:
    use_dump(ctx, state, newest_dump_before(ctx, state, fault_time(ctx)))


def _pull(ctx: DrillContext, state: DbState) -> None:
    chosen = state.chosen
    if chosen is None:
        raise StepFailed("no dump was located")
    state.pulled = scratch_dir(ctx) / "restore.dump"
    sha = dump_catalog(ctx).fetch(chosen, state.pulled)
    if not ctx.integrity(chosen.key, chosen.sha256, sha):
        raise StepFailed(f"dump {chosen.identity} arrived with SHA-256 {sha[:12]}, "
                         f"its manifest says {chosen.sha256[:12]}")
    cross_check(ctx, chosen, state.pulled)


def cross_check(ctx: DrillContext, rec: DumpRecord, path: Path) -> None:
    """The manifest's time against the archive's own header (``pg_restore --list``). A manifest
    dating the dump later than the archive was made understates the RPO: a FAIL with a finding,
    and the restore point takes the archive's time, so the RPO stated is the honest one. (The
    header is later than the snapshot by pg_dump's start-up, and truncated to the second: only a
    manifest *ahead* of it by more than that and the clock tolerance is a mismatch.)"""
    made = database(ctx).archive_created(path)
    ahead = (rec.created - made).total_seconds()
    ctx.event("restore-point.cross-checked", dump=rec.identity,
              manifest_utc=iso(rec.created), archive_header_utc=iso(made))
    if ahead <= RESTORE_POINT_CLOCK_TOLERANCE_S + 1.0:
        return
    ctx.fail(f"dump {rec.identity} is misdated: its manifest says it was made at "
             f"{iso(rec.created)}, the archive's own header (pg_restore --list) says "
             f"{iso(made)}, {ahead:.0f} s earlier; the manifest understates the RPO")
    point = ctx.findings.restore_point
    if point is not None and point.identity == rec.identity:
        ctx.findings.restore_point = replace(point, created=made)


def _restore(ctx: DrillContext, state: DbState) -> None:
    if state.pulled is None:
        raise StepFailed("no dump was pulled")
    db, name = database(ctx), database_name(ctx)
    if db.exists(name):
        raise StepFailed(f"database {name!r} exists again before the restore: something else "
                         f"recreated it; not overwriting it")
    db.restore(name, state.pulled, state.owner)
    state.pulled.unlink(missing_ok=True)


def _verify_tables(ctx: DrillContext, state: DbState) -> None:
    if state.chosen is None:
        raise StepFailed("no dump was restored")
    compare_tables(ctx, state.chosen, raise_=True)


def restore_steps(ctx: DrillContext, state: DbState) -> list[RunbookStep]:
    """Locate the newest dump before the fault, pull it, restore the database, verify tables."""
    return [
        RunbookStep("locate-restore-point", partial(_locate, ctx, state),
                    "newest dump made before the fault"),
        RunbookStep("pull", partial(_pull, ctx, state), "download it and check its SHA-256"),
        RunbookStep("restore", partial(_restore, ctx, state),
                    "create the database and pg_restore the dump"),
        RunbookStep("verify-tables", partial(_verify_tables, ctx, state),
                    "row counts and checksums vs the dump's manifest"),
    ]


def wait_for_service(name: str, summary: str, ready: Callable[[], str | None],
                     what: str) -> RunbookStep:
    """A step that waits until a service depending on the database answers again: ``ready``
    returns None once it does, else the last error (it bounds its own wait)."""
    def run() -> None:
        err = ready()
        if err is not None:
            raise StepFailed(f"{what} does not answer after the restore: {err}")
    return RunbookStep(name, run, summary)


def compare_tables(ctx: DrillContext, rec: DumpRecord, *, raise_: bool) -> bool:
    """Every table's row count and checksum against the dump's manifest, journaled as integrity
    checks; a table the dump does not have is a difference too."""
    name = database_name(ctx)
    got = database(ctx).table_states(name)
    bad = []
    for table in sorted(set(got) | set(rec.tables)):
        want, have = rec.tables.get(table), got.get(table)
        if want is None:  # a table the dump does not have: nothing to compare it with
            ctx.event("integrity.unexpected-table", table=f"{name}.{table}")
            bad.append(table)
            continue
        rows = "absent" if have is None else f"{have.rows} rows"
        ok = ctx.integrity(f"{name}.{table} (expected {want.rows} rows, found {rows})",
                           want.checksum, None if have is None else have.checksum)
        ok = ok and have is not None and want.rows == have.rows
        if not ok:
            bad.append(table)
    if bad and raise_:
        raise StepFailed(f"{len(bad)} table(s) of {name} differ from dump {rec.identity}: "
                         f"{', '.join(bad[:5])}")
    return not bad


# -- verification and revert ----------------------------------------------------------------------


def verify_newest_restored(ctx: DrillContext, state: DbState,
                           explain: ExplainLoss | None = None) -> None:
    """Independently of the runbook: list the restore points again and require the database to
    hold exactly the newest one made before the fault; then count what the restore lost.
    Restoring an older dump than the newest is a FAIL even though it "works"."""
    newest = newest_dump_before(ctx, state, fault_time(ctx))
    if state.chosen is not None and state.chosen.key != newest.key:
        ctx.fail(f"restored dump {state.chosen.identity} although a newer one made before the "
                 f"fault exists ({newest.identity}): data lost needlessly")
    if not compare_tables(ctx, newest, raise_=False):
        ctx.fail(f"{database_name(ctx)} does not hold the newest restore point "
                 f"{newest.identity} (row counts or content checksums differ)")
    account_loss(ctx, state, newest, explain)


def account_loss(ctx: DrillContext, state: DbState, rec: DumpRecord,
                 explain: ExplainLoss | None = None) -> int:
    """Compare the restored rows with the baseline, table by table; the loss goes into the
    evidence and into the restore point. Returns the rows lost or changed."""
    db, name = database(ctx), database_name(ctx)
    tables: dict[str, TableLoss] = {}
    present = set(db.tables(name))
    for table, base in state.base_rows.items():
        now = db.row_hashes(name, table) if table in present else {}
        tables[table] = TableLoss(
            len(base), len(now), sorted(k for k in base if k not in now),
            sorted(k for k in base if k in now and now[k] != base[k]),
            sorted(k for k in now if k not in base))
        if len(now) != len(base) - len(tables[table].lost) + len(tables[table].resurrected):
            ctx.fail(f"row counts of {table} do not add up: baseline {len(base)}, "
                     f"restored {len(now)}")
    lost = sum(len(t.lost) + len(t.changed) for t in tables.values())
    point = ctx.findings.restore_point
    if point is not None:
        ctx.findings.restore_point = replace(point, newer_versions_lost=lost)
    t0 = fault_time(ctx)
    ctx.findings.sections["loss"] = {
        "unit": "rows",
        "restore_point": {"identity": rec.identity, "created_utc": iso(rec.created)},
        "injected_utc": iso(t0),
        "window_s": round((t0 - rec.created).total_seconds(), 6),
        "rows_lost": sum(len(t.lost) for t in tables.values()),
        "rows_changed": sum(len(t.changed) for t in tables.values()),
        "rows_resurrected": sum(len(t.resurrected) for t in tables.values()),
        "tables": {k: v.to_json() for k, v in tables.items()},
        **({} if explain is None else explain(rec, tables)),
    }
    ctx.event("loss.counted", rows_lost=lost)
    return lost


def revert_database(ctx: DrillContext, state: DbState,
                    after: Callable[[], None] | None = None) -> None:
    """Put the safety copy back when the database is not as found, prove it is, then let
    ``after`` bring dependants back; the copy is deleted only once all that held."""
    if state.safety is None:
        return
    db, name = database(ctx), database_name(ctx)
    if not db.exists(name) or db.table_states(name) != state.base_tables:
        ctx.progress("  database differs from how it was found: restoring the safety copy")
        db.drop(name)
        db.restore(name, state.safety.path, state.owner)
        ctx.event("revert.restored-from-safety-copy")
    if db.table_states(name) != state.base_tables:
        raise StepFailed(f"after revert {name} still differs from the baseline; safety copy "
                         f"kept at {state.safety.path}")
    if after is not None:
        after()
    state.safety.path.unlink(missing_ok=True)
