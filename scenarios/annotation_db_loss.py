"""Scenario ``annotation-db-loss``: the annotations database is dropped; it comes back from the
newest pg_dump on the secondary site.

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
is the RPO in data, and which annotations those were. Restoring an older dump than the newest is a
FAIL even though it "works". The steps are harness/runbook/database.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from harness.blast import Touch
from harness.model import RESTORE_POINT_CLOCK_TOLERANCE_S, iso
from harness.runbook import database as db
from harness.scenario import RunbookStep, Scenario
from harness.targets.database import DumpRecord

if TYPE_CHECKING:
    from harness.context import DrillContext


@dataclass
class AnnotationState(db.DbState):
    #: when each annotation was written (read in the baseline), by key
    written: dict[str, datetime] = field(default_factory=dict)


class AnnotationDbLoss(Scenario):
    name: ClassVar[str] = "annotation-db-loss"
    summary: ClassVar[str] = ("drop the annotations database and restore it from the newest "
                              "pg_dump; count the annotations lost")
    variants: ClassVar[tuple[str, ...]] = ("drop",)
    asset_kinds: ClassVar[tuple[str, ...]] = ("annotation-db",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2, 3)
    destructive: ClassVar[bool] = True
    blast_radius: ClassVar[str] = "the asset's database on its PostgreSQL server, nothing else"

    #: the table holding the annotations
    label_table: ClassVar[str] = "labels"

    def __init__(self, ctx: DrillContext) -> None:
        super().__init__(ctx)
        self.state = AnnotationState()

    def scratch_touches(self) -> list[Touch]:
        return db.proof_touches(self.ctx)

    def preflight(self) -> None:
        db.require_database(self.ctx, self.state)

    def baseline(self) -> None:
        db.take_safety_copy(self.ctx, self.state)
        if self.label_table in self.state.base_tables:
            rows = db.database(self.ctx).query(
                db.database_name(self.ctx), f"SELECT id::text, created_at FROM {self.label_table}")
            self.state.written = {str(k): v for k, v in rows}

    def cleanup(self) -> None:
        db.discard_safety_copy(self.ctx, self.state)

    def inject(self) -> None:
        db.drop_database(self.ctx)

    def detect(self) -> bool:
        return db.database_gone(self.ctx)

    def runbook(self) -> list[RunbookStep]:
        return db.restore_steps(self.ctx, self.state)

    def verify(self) -> None:
        db.verify_newest_restored(self.ctx, self.state, self.explain_loss)

    def revert(self) -> None:
        db.revert_database(self.ctx, self.state)

    def explain_loss(self, rec: DumpRecord, tables: dict[str, db.TableLoss]) -> dict[str, Any]:
        """The annotations lost, split by when they were written: after the dump's snapshot
        (what RPO predicts), or before it but committed after it."""
        written = self.state.written
        loss = tables.get(self.label_table)
        keys = [] if loss is None else loss.lost
        after = [k for k in keys if k in written and written[k] >= rec.created]
        # the content against the manifest: an annotation written well before the time the
        # manifest gives must be in the dump (only a transaction still open at the snapshot,
        # within the clock tolerance, could miss it)
        early = rec.created - timedelta(seconds=RESTORE_POINT_CLOCK_TOLERANCE_S)
        missing = sorted(written[k] for k in keys if k in written and written[k] < early)
        if missing:
            self.ctx.fail(f"dump {rec.identity} lacks {len(missing)} annotation(s) written "
                          f"before the time its manifest gives ({iso(rec.created)}; the oldest "
                          f"written {iso(missing[0])}): the dump is older than its manifest "
                          f"says")
        return {"annotations_lost": len(keys), "annotations_written_after_dump": len(after),
                "annotations_written_before_dump": len(keys) - len(after),
                "newest_annotation_lost_utc": (
                    iso(max(written[k] for k in after)) if after else None)}
