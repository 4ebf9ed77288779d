"""``drillbook recover``: put back what dead drills broke, and close their evidence.

A drill that dies (SIGKILL, a lost host, a revert that failed) leaves three things behind: its
leases (harness/lease.py) in the target systems, its journal, and the safety copies recorded in
the leases. Recover:

1. finds the ORPHANS: expired leases from any host (or leases whose holder is known to be gone),
   and local evidence folders whose journal has no verdict and no lease;
2. takes each orphan's leases over (so two recovers never work on one drill);
3. restores every resource from its safety copy: an S3 prefix from ``found-state.json``
   (non-destructively, :meth:`harness.guards.SafetyCopy.restore`), a database from its
   ``pg_dump`` safety file (a database found different is renamed aside, never dropped), then
   verifies it against the found state;
4. closes the orphan's evidence: on this host, the journal gets the recovery and the folder
   gets evidence with verdict INCONCLUSIVE "harness died at PHASE"; otherwise a recovery record
   is written next to the lease;
5. releases the leases when every resource was verified as found; otherwise keeps them, so no
   one drills a target that may still be broken.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import lease
from harness.errors import DrillbookError, StepFailed
from harness.guards import SafetyCopy
from harness.inventory import Inventory
from harness.lease import FoundLease, LeaseState, SafetyRecord
from harness.model import utc_now

Progress = Callable[[str], None]

#: Phases after which the target may have been changed.
BROKEN_FROM = ("inject", "detect", "runbook", "verify", "revert", "evidence", "revert-failed")


@dataclass
class Orphan:
    """A drill that died: its leases (possibly none) and, when here, its evidence folder."""

    drill_id: str
    scenario: str
    variant: str
    asset: str
    host: str
    pid: int | None
    phase: str
    evidence_dir: Path | None
    leases: list[FoundLease] = field(default_factory=list)
    safety: list[SafetyRecord] = field(default_factory=list)
    why: str = ""

    @property
    def injected(self) -> bool:
        return self.phase in BROKEN_FROM

    def describe(self) -> str:
        pid = "?" if self.pid is None else self.pid
        return (f"drill {self.drill_id} ({self.scenario} {self.variant} on {self.asset}) died at "
                f"{self.phase} on {self.host}, pid {pid}: {self.why}")


@dataclass
class Outcome:
    """What recover did for one orphan."""

    orphan: Orphan
    restored: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # restored but not verified as found
    inconclusive: list[str] = field(default_factory=list)  # could not even try
    closed: str = ""  # where the evidence or recovery record went

    @property
    def verified(self) -> bool:
        return not self.failures and not self.inconclusive

    @property
    def exit_code(self) -> int:
        return 1 if self.failures else 2 if self.inconclusive else 0

    def to_json(self) -> dict[str, Any]:
        o = self.orphan
        return {"drill_id": o.drill_id, "died_at": o.phase, "host": o.host, "pid": o.pid,
                "why": o.why, "recovered_utc": utc_now().isoformat(), "recovered_by":
                f"{lease.this_host()}", "restored": self.restored, "failures": self.failures,
                "inconclusive": self.inconclusive, "verified_as_found": self.verified,
                "safety_copies": [{"kind": s.kind, "location": s.location} for s in o.safety]}


# -- finding orphans ---------------------------------------------------------------------------


def find_orphans(resolver: lease.Resolver, evidence_root: Path | None, *,
                 drill: str | None = None, quiet_s: float = lease.DEFAULT_TTL_S) -> list[Orphan]:
    """Every orphan in the site's lease stores and (when given) the local evidence folder."""
    by_id: dict[str, Orphan] = {}
    held: set[str] = set()
    for found in lease.list_leases(resolver.all_stores()):
        r = found.record
        if found.state is LeaseState.HELD:
            held.add(r.drill_id)
            continue
        o = by_id.setdefault(r.drill_id, Orphan(
            r.drill_id, r.scenario, r.variant, r.asset,
            str((r.orphaned_from or {}).get("host", r.host)),
            int((r.orphaned_from or {}).get("pid", r.pid)),
            str((r.orphaned_from or {}).get("phase", r.phase)),
            Path(r.evidence_dir), why=found.why))
        o.leases.append(found)
        for s in r.safety_copies:
            if s.location not in {x.location for x in o.safety}:
                o.safety.append(s)
    for o in by_id.values():
        if o.evidence_dir is not None and not (o.evidence_dir / "journal.jsonl").is_file():
            o.evidence_dir = None  # on another host, or gone
    if evidence_root is not None and evidence_root.is_dir():
        for journal in sorted(evidence_root.glob("*/journal.jsonl")):
            drill_id = journal.parent.name
            if drill_id in by_id or drill_id in held:
                continue
            local = _journal_orphan(journal, quiet_s)
            if local is not None:
                by_id[drill_id] = local
    out = sorted(by_id.values(), key=lambda o: o.drill_id)
    return [o for o in out if drill is None or o.drill_id == drill]


def read_journal(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a line cut by the kill: everything before it is still good
    return out


def _journal_orphan(journal: Path, quiet_s: float) -> Orphan | None:
    """A local drill with no verdict and no lease (died before taking one, or from before
    leases existed), once its journal has been quiet for a lease's lifetime."""
    directory = journal.parent
    if (directory / "evidence.json").exists() or time.time() - journal.stat().st_mtime < quiet_s:
        return None
    lines = read_journal(journal)
    if any(r.get("type") == "verdict" for r in lines):
        return None
    head = next((r for r in lines if r.get("type") == "drill"), {})
    phases = [r["event"][6:] for r in lines if r.get("type") == "event"
              and str(r.get("event", "")).startswith("phase.")]
    o = Orphan(directory.name, str(head.get("scenario", "?")), str(head.get("variant", "?")),
               str(head.get("asset", "?")), lease.this_host(), None,
               phases[-1] if phases else "preflight", directory,
               why="journal has no verdict and no lease names the drill")
    for r in lines:
        if r.get("type") == "event" and r.get("event") == "safety.copy.taken":
            d = r.get("detail", {})
            if "location" in d:
                o.safety.append(SafetyRecord("s3-versions", str(d["location"]), {}))
            elif "path" in d:
                o.safety.append(SafetyRecord("pg-dump", str(d["path"]), {}))
    return o


# -- restoring ----------------------------------------------------------------------------------


class Recoverer:
    """Restores orphans with the inventory's adapters."""

    def __init__(self, inventory: Inventory, adapters: Any, *, dry_run: bool = False,
                 progress: Progress = print) -> None:
        self.inventory = inventory
        self.adapters = adapters
        self.dry_run = dry_run
        self.progress = progress

    def recover(self, orphan: Orphan) -> Outcome:
        out = Outcome(orphan)
        self.progress(f"orphan: {orphan.describe()}")
        leases = self._take_over(orphan, out)
        if out.inconclusive:
            return out
        for s in orphan.safety:
            try:
                self._restore(orphan, s, out)
            except StepFailed as exc:
                out.failures.append(str(exc))
            except DrillbookError as exc:
                out.inconclusive.append(f"{s.kind} {s.location}: {exc}")
        if orphan.injected and not orphan.safety:
            out.inconclusive.append(
                f"no safety copy is recorded for this drill although it reached {orphan.phase}: "
                f"check {', '.join(f.record.resource for f in orphan.leases) or orphan.asset} "
                f"by hand")
        for line in out.restored + out.failures + out.inconclusive:
            self.progress(f"  {line}")
        if self.dry_run:
            return out
        from harness.orphan_evidence import close_evidence
        out.closed = close_evidence(self.inventory, out, leases)
        self.progress(f"  evidence: {out.closed}")
        self._settle(leases, out)
        return out

    def _take_over(self, orphan: Orphan, out: Outcome) -> list[FoundLease]:
        if self.dry_run:
            return orphan.leases
        taken = []
        for found in orphan.leases:
            new = lease.take_over(found)
            if new is None:
                out.inconclusive.append(f"the lease on {found.record.resource} changed while "
                                        f"recover took it over (another recover?)")
            else:
                taken.append(new)
        return taken

    def _settle(self, leases: list[FoundLease], out: Outcome) -> None:
        for found in leases:
            if out.verified:
                found.store.remove(found.record.resource, found.tag)
            else:
                lease.mark(found, "recover-failed")
        self.progress("  leases " + ("released" if out.verified else
                                     "KEPT: the target is not verified as found"))

    def _restore(self, orphan: Orphan, s: SafetyRecord, out: Outcome) -> None:
        if s.kind == "s3-versions":
            self._restore_s3(orphan, s, out)
        elif s.kind == "pg-dump":
            self._restore_db(orphan, s, out)
        elif s.kind == "kube-found-state":
            self._restore_kube(orphan, s, out)
        else:
            out.inconclusive.append(f"unknown safety copy kind {s.kind!r} at {s.location}")

    def _restore_s3(self, orphan: Orphan, s: SafetyRecord, out: Outcome) -> None:
        bucket, _, root = s.location.removeprefix("s3://").partition("/")
        target = str(s.detail.get("target") or self.inventory.assets[orphan.asset].store)
        store = self.adapters.s3(target)
        if not orphan.injected:
            out.restored.append(f"s3://{s.detail.get('bucket', '?')}/{s.detail.get('prefix', '')}"
                                f": the drill died at {orphan.phase}, before inject; nothing to "
                                f"restore; safety copy {s.location} discarded")
            if not self.dry_run:
                SafetyCopy(store, "", "", bucket, root.rstrip("/")).discard()
            return
        copy = SafetyCopy.load(store, bucket, root, bucket=s.detail.get("bucket"),
                               prefix=s.detail.get("prefix"))
        where = f"s3://{copy.bucket}/{copy.prefix}"
        differs = copy.differences()
        if not differs:
            out.restored.append(f"{where}: already as found ({len(copy.found)} versions); "
                                f"nothing deleted or written")
        elif self.dry_run:
            out.restored.append(f"{where}: would restore from {s.location}: " + "; ".join(
                differs[:5]))
            return
        else:
            report = copy.restore()  # raises StepFailed naming what still differs
            out.restored.append(f"{where}: restored from {s.location} and verified as found "
                                f"({report.summary()})")
        if not self.dry_run:
            copy.discard()

    def _restore_db(self, orphan: Orphan, s: SafetyRecord, out: Outcome) -> None:
        from harness.targets.database import TableState, sha256_file
        d = s.detail
        if d.get("host") not in (None, lease.this_host()):
            out.inconclusive.append(f"the pg_dump safety copy {s.location} is on host "
                                    f"{d.get('host')}: run `drillbook recover` there")
            return
        path = Path(s.location)
        database = str(d.get("database") or self.inventory.assets[orphan.asset].database)
        target = str(d.get("target") or self.inventory.assets[orphan.asset].store)
        db = self.adapters.postgres(target)
        if not orphan.injected:
            out.restored.append(f"database {database}: the drill died at {orphan.phase}, before "
                                f"inject; nothing to restore")
            if not self.dry_run:
                path.unlink(missing_ok=True)
            return
        if "tables" not in d or not path.is_file():
            out.inconclusive.append(f"database {database}: the safety dump {path} is "
                                    f"{'missing' if not path.is_file() else 'not complete'}")
            return
        if d.get("sha256") and sha256_file(path) != d["sha256"]:
            out.inconclusive.append(f"database {database}: the safety dump {path} does not have "
                                    f"the SHA-256 recorded when it was taken")
            return
        want = {k: TableState(int(v["rows"]), str(v["checksum"]))
                for k, v in dict(d["tables"]).items()}
        if db.exists(database) and db.table_states(database) == want:
            out.restored.append(f"database {database}: already as found ({len(want)} tables); "
                                f"untouched")
        elif self.dry_run:
            out.restored.append(f"database {database}: would restore from {path}")
            return
        else:
            aside = ""
            if db.exists(database):
                aside = f"{database}_drillbook_{orphan.drill_id[-6:]}"
                _rename(db, database, aside)
            db.restore(database, path, str(d.get("owner") or db.target.user))
            got = db.table_states(database)
            if got != want:
                bad = sorted(t for t in set(got) | set(want) if got.get(t) != want.get(t))
                raise StepFailed(f"database {database} restored from {path} still differs from "
                                 f"how it was found: tables {', '.join(bad[:10])}")
            kept = (f"; the database as recover found it was kept as {aside!r} (drop it once "
                    f"reviewed)") if aside else ""
            out.restored.append(f"database {database}: restored from {path}, {len(want)} tables "
                                f"verified against the found checksums{kept}")
        if not self.dry_run:
            path.unlink(missing_ok=True)


    def _restore_kube(self, orphan: Orphan, s: SafetyRecord, out: Outcome) -> None:
        """A cluster drill's found state (harness/runbook/kube_recover.py): undo its fault."""
        from harness.runbook import kube_recover
        target = str(s.detail.get("target") or self.inventory.assets[orphan.asset].store)
        if not orphan.injected:
            out.restored.append(f"cluster {target}: the drill died at {orphan.phase}, before "
                                f"inject; nothing to undo")
            return
        out.restored.extend(kube_recover.restore(
            self.adapters.kube(target), s.detail, self.inventory.step_timeout_s,
            dry_run=self.dry_run))


def _rename(db: Any, database: str, new: str) -> None:
    """Move a database aside (ending its sessions) instead of dropping it."""
    from psycopg import sql
    with db.connect() as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                     "AND pid <> pg_backend_pid()", (database,))
        conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
            sql.Identifier(database), sql.Identifier(new)))


def recover_all(inventory: Inventory, adapters: Any, resolver: lease.Resolver,
                evidence_root: Path | None, *, drill: str | None = None, dry_run: bool = False,
                progress: Progress = print, quiet_s: float = lease.DEFAULT_TTL_S
                ) -> list[Outcome]:
    orphans = find_orphans(resolver, evidence_root, drill=drill, quiet_s=quiet_s)
    r = Recoverer(inventory, adapters, dry_run=dry_run, progress=progress)
    return [r.recover(o) for o in orphans]

