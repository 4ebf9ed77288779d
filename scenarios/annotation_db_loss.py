"""Scenario ``annotation-db-loss``: the annotations database is dropped; it comes back from the
newest pg_dump on the secondary site.

Also the base of every "a PostgreSQL database is gone" drill (:class:`DatabaseLoss`; the model
registry's drill, scenarios/registry_loss.py, builds on it).

Before the fault: the newest dump is downloaded, its SHA-256 checked against its manifest and
restored into a scratch database whose tables must match the checksums the backup job took in the
dump's own snapshot: a dump that does not restore means nothing is dropped (INCONCLUSIVE). Then a
safety copy (a pg_dump of the database as found) is taken; revert puts it back, so the drill
leaves the database as it found it, late writes included.

Blast radius: one database (the asset's) on its server; nothing else on the server is touched.

Verification is independent of the runbook: it lists the restore points again and requires the
database to hold exactly the newest one made before the fault (row counts and content checksums
of every table, from the dump's manifest); then it compares the restored rows with the baseline
row by row and counts what was lost (rows written after the dump, rows changed after it), which
is the RPO in data. Restoring an older dump than the newest is a FAIL even though it "works".
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from harness import lease
from harness.blast import Touch
from harness.errors import Inconclusive, StepFailed
from harness.model import RESTORE_POINT_CLOCK_TOLERANCE_S, RestorePoint, event_by_name, iso
from harness.scenario import RunbookStep, Scenario
from harness.targets.database import (
    Database,
    DumpCatalog,
    DumpInfo,
    DumpRecord,
    TableState,
    sha256_file,
)

if TYPE_CHECKING:
    from harness.context import DrillContext

#: At most this many lost keys are listed in the evidence (all are counted).
LIST_LIMIT = 50


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


class DatabaseLoss(Scenario):
    """A PostgreSQL database is dropped and restored from the newest dump made before it."""

    variants: ClassVar[tuple[str, ...]] = ("drop",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2, 3)
    destructive: ClassVar[bool] = True
    blast_radius: ClassVar[str] = "the asset's database on its PostgreSQL server, nothing else"

    owner: str
    safety: DumpInfo | None = None
    base_tables: dict[str, TableState]
    base_rows: dict[str, dict[str, str]]
    chosen: DumpRecord | None = None
    pulled: Path | None = None
    #: restore points already reported as passed over (one deviation each)
    _noted: set[str]

    def __init__(self, ctx: DrillContext) -> None:
        super().__init__(ctx)
        self._noted = set()

    # -- helpers ------------------------------------------------------------------------------

    @property
    def db(self) -> Database:
        return self.ctx.adapters.postgres(self.ctx.asset.store)

    @property
    def database(self) -> str:
        name = self.ctx.asset.database
        assert name is not None  # the inventory requires it for database assets
        return name

    @property
    def catalog(self) -> DumpCatalog:
        a = self.ctx.asset
        assert a.backup is not None
        return DumpCatalog(self.ctx.adapters.s3(a.backup), a.bucket, a.prefix)

    @property
    def scratch(self) -> Path:
        return self.ctx.work_dir / self.ctx.drill_id

    def injected_at(self) -> datetime:
        ev = event_by_name(self.ctx.journal.events, "fault.injected")
        if ev is None:
            raise Inconclusive("no fault.injected event: nothing to restore to before")
        return ev.utc

    def newest_before(self, when: datetime) -> DumpRecord:
        """The newest dump whose manifest dates it before ``when``, give or take the documented
        clock tolerance; a dump dated later is passed over with a deviation."""
        bound = when + timedelta(seconds=RESTORE_POINT_CLOCK_TOLERANCE_S)
        records = self.catalog.records()
        for r in records:
            if r.created > bound and r.key not in self._noted:
                self._noted.add(r.key)
                self.ctx.deviation(
                    f"dump {r.identity} is dated {iso(r.created)}, "
                    f"{(r.created - when).total_seconds():.1f} s after {iso(when)}, beyond the "
                    f"clock tolerance of {RESTORE_POINT_CLOCK_TOLERANCE_S:g} s: not used as a "
                    f"restore point")
        before = [r for r in records if r.created <= bound]
        if not before:
            raise Inconclusive(f"no restore point: no dump of {self.database} made before "
                               f"{iso(when)} in {self.catalog.location}")
        return before[-1]

    def scratch_touches(self) -> list[Touch]:
        # prove_restorable restores the newest dump into a throwaway database and drops it
        return [Touch.database(self.ctx.asset.store, "drillbook_proof_*")]

    def cross_check(self, rec: DumpRecord, path: Path) -> None:
        """The manifest's time against the archive's own header (``pg_restore --list``). A
        manifest dating the dump later than the archive was made understates the RPO: a FAIL
        with a finding, and the restore point takes the archive's time, so the RPO stated is the
        honest one. (The header is later than the snapshot by pg_dump's start-up, and truncated
        to the second: only a manifest *ahead* of it by more than that and the clock tolerance
        is a mismatch.)"""
        made = self.db.archive_created(path)
        ahead = (rec.created - made).total_seconds()
        self.ctx.event("restore-point.cross-checked", dump=rec.identity,
                       manifest_utc=iso(rec.created), archive_header_utc=iso(made))
        if ahead <= RESTORE_POINT_CLOCK_TOLERANCE_S + 1.0:
            return
        self.ctx.fail(f"dump {rec.identity} is misdated: its manifest says it was made at "
                      f"{iso(rec.created)}, the archive's own header (pg_restore --list) says "
                      f"{iso(made)}, {ahead:.0f} s earlier; the manifest understates the RPO")
        point = self.ctx.findings.restore_point
        if point is not None and point.identity == rec.identity:
            self.ctx.findings.restore_point = replace(point, created=made)

    # -- phases ---------------------------------------------------------------------------------

    def preflight(self) -> None:
        self.db.ping()
        if not self.db.exists(self.database):
            raise Inconclusive(f"database {self.database!r} does not exist on "
                               f"{self.db.where}: nothing to drill")
        self.owner = self.db.owner(self.database)
        self.prove_restorable(self.newest_before(self.ctx.clock.utc()))

    def prove_restorable(self, rec: DumpRecord) -> None:
        """Download the dump, check its hash, restore it into a scratch database and compare its
        tables with the manifest. Anything short of that: refuse to drop (INCONCLUSIVE)."""
        path = self.scratch / "proof.dump"
        sha = self.catalog.fetch(rec, path)
        if sha != rec.sha256:
            raise Inconclusive(f"no restorable copy: dump {rec.identity} has SHA-256 {sha[:12]}, "
                               f"its manifest says {rec.sha256[:12]}; refusing to drop anything")
        proof = f"drillbook_proof_{secrets.token_hex(4)}"
        try:
            self.db.restore(proof, path, self.owner)
            got = self.db.table_states(proof)
        finally:
            self.db.drop(proof)
            path.unlink(missing_ok=True)
        if got != rec.tables:
            bad = sorted(t for t in set(got) | set(rec.tables) if got.get(t) != rec.tables.get(t))
            raise Inconclusive(f"no restorable copy: dump {rec.identity} restores to tables that "
                               f"differ from its manifest ({', '.join(bad[:5])}); refusing to "
                               f"drop anything")
        self.ctx.event("restorable.proven", source="pg_dump", dump=rec.identity,
                       dump_utc=iso(rec.created), tables=len(got),
                       rows=sum(t.rows for t in got.values()))

    def baseline(self) -> None:
        # the safety copy's snapshot is the baseline: its checksums describe exactly what it holds
        path = (self.scratch / "safety.dump").resolve()
        # recorded in the drill's leases before and after it is taken: `drillbook recover`
        # restores it if this process dies
        where = {"target": self.ctx.asset.store, "database": self.database, "owner": self.owner,
                 "host": lease.this_host()}
        lease.record_safety_copy(self.ctx.drill_id, "pg-dump", str(path), **where)
        self.safety = self.db.dump(self.database, path)
        lease.record_safety_copy(self.ctx.drill_id, "pg-dump", str(path), **where,
                                 sha256=self.safety.sha256,
                                 tables={k: v.to_json() for k, v in self.safety.tables.items()})
        self.base_tables = self.safety.tables
        self.base_rows = {t: self.db.row_hashes(self.database, t) for t in self.base_tables}
        if {t: len(r) for t, r in self.base_rows.items()} != \
                {t: s.rows for t, s in self.base_tables.items()}:
            raise Inconclusive(f"{self.database} changed while the baseline was read: its loss "
                               f"could not be accounted for")
        self.ctx.event("safety.copy.taken", path=str(self.safety.path), bytes=self.safety.size,
                       sha256=self.safety.sha256, tables=len(self.base_tables),
                       rows=sum(t.rows for t in self.base_tables.values()))
        self._prove_safety_copy(self.safety)

    def _prove_safety_copy(self, safety: DumpInfo) -> None:
        """The dump on disk is the one pg_dump wrote (its SHA-256 read back) and a readable
        archive that holds every table of the baseline; otherwise stop with nothing touched."""
        if sha256_file(safety.path) != safety.sha256:
            raise Inconclusive(f"the safety copy {safety.path} changed after it was written; "
                               f"nothing was touched")
        listed = "\n".join(self.db.list_archive(safety.path))
        missing = [t for t in self.base_tables if t.rsplit(".", 1)[-1] not in listed]
        if missing:
            raise Inconclusive(f"the safety copy {safety.path} lacks table(s) "
                               f"{', '.join(missing[:5])}; nothing was touched")
        self.ctx.event("safety.copy.proven", method="sha256 read back, pg_restore --list",
                       tables=len(self.base_tables))

    def cleanup(self) -> None:
        if self.safety is not None:
            self.safety.path.unlink(missing_ok=True)
            self.ctx.event("safety.copy.discarded", reason="the drill ended before inject")
        if self.scratch.is_dir():
            shutil.rmtree(self.scratch, ignore_errors=True)

    def inject(self) -> None:
        self.db.drop(self.database)
        self.ctx.event("fault.database.dropped", database=self.database, server=self.db.where)

    def detect(self) -> bool:
        return not self.db.exists(self.database)

    # -- runbook ----------------------------------------------------------------------------------

    def runbook(self) -> list[RunbookStep]:
        return [
            RunbookStep("locate-restore-point", self.locate, "newest dump made before the fault"),
            RunbookStep("pull", self.pull, "download it and check its SHA-256"),
            RunbookStep("restore", self.restore, "create the database and pg_restore the dump"),
            RunbookStep("verify-tables", self.verify_tables, "row counts and checksums vs the "
                                                              "dump's manifest"),
        ]

    def locate(self) -> None:
        self.use_restore_point(self.newest_before(self.injected_at()))

    def use_restore_point(self, rec: DumpRecord) -> None:
        """Record the dump the recovery restores (also used by custom locators)."""
        self.chosen = rec
        self.ctx.findings.restore_point = RestorePoint(
            "pg-dump", rec.identity, rec.created, f"s3://{self.catalog.bucket}/{rec.key}")

    def pull(self) -> None:
        assert self.chosen is not None
        self.pulled = self.scratch / "restore.dump"
        sha = self.catalog.fetch(self.chosen, self.pulled)
        if not self.ctx.integrity(self.chosen.key, self.chosen.sha256, sha):
            raise StepFailed(f"dump {self.chosen.identity} arrived with SHA-256 {sha[:12]}, "
                             f"its manifest says {self.chosen.sha256[:12]}")
        self.cross_check(self.chosen, self.pulled)

    def restore(self) -> None:
        assert self.pulled is not None
        if self.db.exists(self.database):
            raise StepFailed(f"database {self.database!r} exists again before the restore: "
                             f"something else recreated it; not overwriting it")
        self.db.restore(self.database, self.pulled, self.owner)
        self.pulled.unlink(missing_ok=True)

    def verify_tables(self) -> None:
        assert self.chosen is not None
        self._compare_tables(self.chosen, raise_=True)

    def _compare_tables(self, rec: DumpRecord, *, raise_: bool) -> bool:
        got = self.db.table_states(self.database)
        bad = []
        for table in sorted(set(got) | set(rec.tables)):
            want, have = rec.tables.get(table), got.get(table)
            if want is None:  # a table the dump does not have: nothing to compare it with
                self.ctx.event("integrity.unexpected-table", table=f"{self.database}.{table}")
                bad.append(table)
                continue
            rows = "absent" if have is None else f"{have.rows} rows"
            ok = self.ctx.integrity(
                f"{self.database}.{table} (expected {want.rows} rows, found {rows})",
                want.checksum, None if have is None else have.checksum)
            ok = ok and have is not None and want.rows == have.rows
            if not ok:
                bad.append(table)
        if bad and raise_:
            raise StepFailed(f"{len(bad)} table(s) of {self.database} differ from dump "
                             f"{rec.identity}: {', '.join(bad[:5])}")
        return not bad

    # -- verify and revert --------------------------------------------------------------------------

    def verify(self) -> None:
        newest = self.newest_before(self.injected_at())
        if self.chosen is not None and self.chosen.key != newest.key:
            self.ctx.fail(f"restored dump {self.chosen.identity} although a newer one made "
                          f"before the fault exists ({newest.identity}): data lost needlessly")
        if not self._compare_tables(newest, raise_=False):
            self.ctx.fail(f"{self.database} does not hold the newest restore point "
                          f"{newest.identity} (row counts or content checksums differ)")
        self.account_loss(newest)

    def account_loss(self, rec: DumpRecord) -> int:
        """Compare the restored rows with the baseline, table by table; the loss goes into the
        evidence and into the restore point. Returns the rows lost or changed."""
        tables: dict[str, TableLoss] = {}
        present = set(self.db.tables(self.database))
        for table, base in self.base_rows.items():
            now = self.db.row_hashes(self.database, table) if table in present else {}
            tables[table] = TableLoss(
                len(base), len(now), sorted(k for k in base if k not in now),
                sorted(k for k in base if k in now and now[k] != base[k]),
                sorted(k for k in now if k not in base))
            if len(now) != len(base) - len(tables[table].lost) + len(tables[table].resurrected):
                self.ctx.fail(f"row counts of {table} do not add up: baseline {len(base)}, "
                              f"restored {len(now)}")
        lost = sum(len(t.lost) + len(t.changed) for t in tables.values())
        point = self.ctx.findings.restore_point
        if point is not None:
            self.ctx.findings.restore_point = replace(point, newer_versions_lost=lost)
        t0 = self.injected_at()
        self.ctx.findings.sections["loss"] = {
            "unit": "rows",
            "restore_point": {"identity": rec.identity, "created_utc": iso(rec.created)},
            "injected_utc": iso(t0),
            "window_s": round((t0 - rec.created).total_seconds(), 6),
            "rows_lost": sum(len(t.lost) for t in tables.values()),
            "rows_changed": sum(len(t.changed) for t in tables.values()),
            "rows_resurrected": sum(len(t.resurrected) for t in tables.values()),
            "tables": {k: v.to_json() for k, v in tables.items()},
            **self.explain_loss(rec, tables),
        }
        self.ctx.event("loss.counted", rows_lost=lost)
        return lost

    def explain_loss(self, rec: DumpRecord, tables: dict[str, TableLoss]) -> dict[str, Any]:
        """Scenario-specific detail of the loss."""
        return {}

    def revert(self) -> None:
        if self.safety is None:
            return
        if not self.db.exists(self.database) or \
                self.db.table_states(self.database) != self.base_tables:
            self.ctx.progress("  database differs from how it was found: restoring the "
                              "safety copy")
            self.db.drop(self.database)
            self.db.restore(self.database, self.safety.path, self.owner)
            self.ctx.event("revert.restored-from-safety-copy")
        if self.db.table_states(self.database) != self.base_tables:
            raise StepFailed(f"after revert {self.database} still differs from the baseline; "
                             f"safety copy kept at {self.safety.path}")
        self.after_revert()
        self.safety.path.unlink(missing_ok=True)

    def after_revert(self) -> None:
        """Hook: bring dependants back after the database is as found."""


class AnnotationDbLoss(DatabaseLoss):
    name: ClassVar[str] = "annotation-db-loss"
    summary: ClassVar[str] = ("drop the annotations database and restore it from the newest "
                              "pg_dump; count the annotations lost")
    asset_kinds: ClassVar[tuple[str, ...]] = ("annotation-db",)

    #: the table holding the annotations, and when each was written (read in the baseline)
    label_table: ClassVar[str] = "labels"
    written: dict[str, datetime]

    def baseline(self) -> None:
        super().baseline()
        self.written = {}
        if self.label_table in self.base_tables:
            self.written = {str(k): v for k, v in self.db.query(
                self.database, f"SELECT id::text, created_at FROM {self.label_table}")}

    def explain_loss(self, rec: DumpRecord, tables: dict[str, TableLoss]) -> dict[str, Any]:
        """The annotations lost, split by when they were written: after the dump's snapshot
        (what RPO predicts), or before it but committed after it."""
        loss = tables.get(self.label_table)
        keys = [] if loss is None else loss.lost
        after = [k for k in keys if k in self.written and self.written[k] >= rec.created]
        # the content against the manifest: an annotation written well before the time the
        # manifest gives must be in the dump (only a transaction still open at the snapshot,
        # within the clock tolerance, could miss it)
        early = rec.created - timedelta(seconds=RESTORE_POINT_CLOCK_TOLERANCE_S)
        missing = sorted(self.written[k] for k in keys if k in self.written
                          and self.written[k] < early)
        if missing:
            self.ctx.fail(f"dump {rec.identity} lacks {len(missing)} annotation(s) written "
                          f"before the time its manifest gives ({iso(rec.created)}; the oldest "
                          f"written {iso(missing[0])}): the dump is older than its manifest "
                          f"says")
        return {"annotations_lost": len(keys), "annotations_written_after_dump": len(after),
                "annotations_written_before_dump": len(keys) - len(after),
                "newest_annotation_lost_utc": (
                    iso(max(self.written[k] for k in after)) if after else None)}
