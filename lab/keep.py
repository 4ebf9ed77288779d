"""`lab up` never papers over a loss: what it must not regenerate or re-seed, and why.

Regenerating the lab model under a new manifest, or re-seeding a dropped database, would hide
exactly what a drill (or a dead drill) broke and replace real data with seed data. So before
``lab up`` writes an asset it did not find, it asks: does a drill hold it (a lease, live or
orphaned), and does a backup of it exist? In either case it leaves the asset alone and says so,
pointing to ``drillbook recover`` (or a restore from the backup). Only an asset that was never
there and was never backed up is generated.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.blast import Touch, overlaps
from harness.lease import FoundLease, LeaseState, list_leases
from harness.lease_stores import PostgresLeaseStore, S3LeaseStore
from harness.targets.database import Database
from harness.targets.s3 import S3Store

Progress = Callable[[str], None]


def leases_on(found: list[FoundLease], touch: Touch) -> list[FoundLease]:
    return [f for f in found if overlaps(f.record.touch, touch)]


def s3_leases(store: S3Store, safety_bucket: str, touch: Touch) -> list[FoundLease]:
    return leases_on(list_leases([S3LeaseStore(store, safety_bucket)]), touch)


def pg_leases(db: Database, touch: Touch) -> list[FoundLease]:
    return leases_on(list_leases([PostgresLeaseStore(db)]), touch)


def may_generate(what: str, leases: list[FoundLease], backup: str | None, present: bool,
                 progress: Progress) -> bool:
    """True when ``lab up`` may (re)create ``what``; otherwise says why not."""
    if leases:
        states = ", ".join(f"{'an ORPHANED' if f.state is LeaseState.ORPHAN else 'a live'} "
                           f"{f.record.holder()}" for f in leases)
        progress(f"lab: NOT regenerating {what}: it is held by {states}; run `drillbook "
                 f"recover` to put it back")
        return False
    if present or backup is not None:
        have = "some of it is still in the store" if present else f"a backup exists ({backup})"
        progress(f"lab: NOT regenerating {what}: it is missing or differs from the lab's copy, "
                 f"and {have}; this may be a drill's loss. Run `drillbook recover`, or restore "
                 f"it from the backup, instead of replacing it with generated data")
        return False
    return True
