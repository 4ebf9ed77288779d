"""Drill leases: who is drilling what, kept in the target systems so every driller sees it.

A drill takes one lease per resource it declares (:meth:`Scenario.touches`) before preflight,
renews them from a background thread, writes into them the phase it reached and the safety copies
it took, and releases them once its evidence is built. The leases live where the resources are
(see :mod:`harness.lease_stores`): an S3 resource's lease in the safety bucket of its store, a
database's in its PostgreSQL server, and a node's, job's, account's or pool's in the site's lease
store (the first drill-safe S3 target of the inventory). Another checkout, host, CI job or
evidence directory drilling the same site therefore sees the lease.

    acquire ──> note_phase / add_safety_copy (written at once) ──> release
       │            renewed every ttl/3 s in the background
       └─ refused: LeaseHeld ("held by drill X since T (host, pid)") or LeaseOrphaned

A lease whose holder stopped renewing (or whose holder's process is gone, when the store or the
host can tell) is an ORPHAN: its drill may have broken something, so the resource is not free
until ``drillbook recover`` has put it back from the safety copies recorded in the lease.
Overlapping resources (a bucket and a prefix inside it) exclude each other: after creating its
leases a drill lists the others and backs off when it finds an overlapping one.

The records themselves (what a lease holds, how one is read back and classified) are
:mod:`harness.lease_records`; their names are re-exported here.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from harness.blast import Touch, TouchKind, overlaps
from harness.errors import Inconclusive, UsageError
from harness.inventory import Inventory, PostgresTarget, S3Target
from harness.inventory_kube import KubeTarget
from harness.lease_records import (
    LEASE_FORMAT,
    RECOVERY_PREFIX,
    FoundLease,
    LeaseRecord,
    LeaseState,
    SafetyRecord,
    classify,
    list_leases,
    pid_running,
    read_lease,
    this_host,
)
from harness.lease_stores import (
    LeaseStore,
    MemoryLeaseStore,
    PostgresLeaseStore,
    S3LeaseStore,
)
from harness.model import utc_now

# the record names are defined in harness.lease_records and kept importable from here
__all__ = [
    "DEFAULT_TTL_S", "LEASE_FORMAT", "RECOVERY_PREFIX", "TAKEOVER_TTL_S", "DrillLeases",
    "FoundLease", "LeaseHeld", "LeaseOrphaned", "LeaseRecord", "LeaseResolver", "LeaseState",
    "MemoryResolver", "Resolver", "SafetyRecord", "active", "classify", "list_leases", "mark",
    "note_phase", "pid_running", "read_lease", "record_safety_copy", "take_over", "this_host",
]

#: Seconds a lease lives without renewal; renewed every third of that.
DEFAULT_TTL_S = float(os.environ.get("DRILLBOOK_LEASE_TTL_S", "60"))
#: How long `drillbook recover` holds an orphan's lease it took over (it does not renew).
TAKEOVER_TTL_S = 3600.0


class LeaseHeld(Inconclusive):
    """Another live drill holds a resource this drill declares."""


class LeaseOrphaned(Inconclusive):
    """A dead drill's lease is on a resource this drill declares: `drillbook recover` first."""


class Resolver(Protocol):
    """Which store keeps the lease of a resource."""

    def store_for(self, touch: Touch) -> LeaseStore: ...

    def all_stores(self) -> list[LeaseStore]: ...


class MemoryResolver:
    """Every lease in one in-memory store: for tests, and for runs with nothing to exclude."""

    def __init__(self, store: MemoryLeaseStore | None = None) -> None:
        self.store = store or MemoryLeaseStore()

    def store_for(self, touch: Touch) -> LeaseStore:
        return self.store

    def all_stores(self) -> list[LeaseStore]:
        return [self.store]


class LeaseResolver:
    """Which store keeps the lease of a resource, from the inventory."""

    def __init__(self, inventory: Inventory, s3: Callable[[str], Any],
                 postgres: Callable[[str], Any], kube: Callable[[str], Any] | None = None) -> None:
        self.inventory = inventory
        self._s3 = s3
        self._pg = postgres
        self._kube = kube
        self._stores: dict[str, LeaseStore] = {}

    def _store(self, name: str) -> LeaseStore:
        if name not in self._stores:
            t = self.inventory.targets[name]
            if isinstance(t, PostgresTarget):
                self._stores[name] = PostgresLeaseStore(self._pg(name))
            elif isinstance(t, KubeTarget):
                from harness.lease_kube import KubeLeaseStore  # the client only where needed

                if self._kube is None:
                    raise UsageError(f"leases on cluster {name} need a Kubernetes adapter")
                self._stores[name] = KubeLeaseStore(self._kube(name))
            else:
                self._stores[name] = S3LeaseStore(self._s3(name), self.inventory.safety_bucket)
        return self._stores[name]

    def site_target(self) -> str:
        """The S3 target that keeps the leases of resources with no store of their own."""
        s3 = [n for n, t in self.inventory.targets.items() if isinstance(t, S3Target)]
        safe = [n for n in s3 if self.inventory.targets[n].drill_safe]
        if not (safe or s3):
            # a site that is only a cluster keeps its leases as Kubernetes Leases
            kube = [n for n, t in self.inventory.targets.items()
                    if isinstance(t, KubeTarget) and t.drill_safe]
            if kube and self._kube is not None:
                return kube[0]
            raise UsageError(f"{self.inventory.path} has no S3 target: nowhere to keep drill "
                             f"leases")
        return (safe or s3)[0]

    def target_for(self, touch: Touch) -> str:
        t = self.inventory.targets.get(touch.target)
        if t is not None and t.drill_safe and (
                (isinstance(t, S3Target) and touch.kind is TouchKind.S3_PREFIX)
                or (isinstance(t, PostgresTarget) and touch.kind is TouchKind.DATABASE)
                or (isinstance(t, KubeTarget) and self._kube is not None)):
            return touch.target
        # never write a lease into a target not marked drill-safe: use the site's lease store
        return self.site_target()

    def store_for(self, touch: Touch) -> LeaseStore:
        return self._store(self.target_for(touch))

    def all_stores(self) -> list[LeaseStore]:
        """Every store a lease of this site may be in."""
        kinds: tuple[type, ...] = (S3Target, PostgresTarget)
        if self._kube is not None:
            kinds += (KubeTarget,)
        names = [n for n, t in self.inventory.targets.items() if t.drill_safe and
                 isinstance(t, kinds)]
        site = self.site_target()
        return [self._store(n) for n in dict.fromkeys([site, *names])]


@dataclass
class _Held:
    store: LeaseStore
    record: LeaseRecord
    tag: str


class DrillLeases:
    """The leases of one drill: acquire all or none, renew, record progress, release."""

    def __init__(self, resolver: Resolver, *, drill_id: str, scenario: str, variant: str,
                 asset: str, evidence_dir: str, ttl_s: float = DEFAULT_TTL_S,
                 now: Callable[[], datetime] = utc_now) -> None:
        self.resolver = resolver
        self.ttl_s = ttl_s
        self.now = now
        self.drill_id = drill_id
        self.scenario, self.variant, self.asset = scenario, variant, asset
        self.evidence_dir = evidence_dir
        self.token = secrets.token_hex(8)
        self.held: list[_Held] = []
        self.phase = "preflight"
        self.safety: list[SafetyRecord] = []
        #: what went wrong with the leases during the drill (lost to another holder, unwritable)
        self.problems: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- acquire ---------------------------------------------------------------------------------

    def _record(self, touch: Touch, started: datetime) -> LeaseRecord:
        now = self.now()
        return LeaseRecord(touch=touch, host=this_host(), pid=os.getpid(), started=started,
                           renewed=now, expires=now + timedelta(seconds=self.ttl_s),
                           phase=self.phase, token=self.token, safety_copies=tuple(self.safety),
                           drill_id=self.drill_id, scenario=self.scenario, variant=self.variant,
                           asset=self.asset, evidence_dir=self.evidence_dir)

    def acquire(self, touches: Iterable[Touch]) -> None:
        """Take a lease on every resource, or none: raises LeaseHeld / LeaseOrphaned naming the
        holder, after giving back what it took."""
        wanted = sorted(set(touches), key=lambda t: t.resource)
        started = self.now()
        try:
            for touch in wanted:
                self.held.append(self._take(touch, started))
            self._check_overlaps(wanted)
        except BaseException:
            self.release()
            raise
        _ACTIVE[self.drill_id] = self
        self._thread = threading.Thread(target=self._renew_loop, name="drillbook-lease",
                                        daemon=True)
        self._thread.start()

    def _take(self, touch: Touch, started: datetime) -> _Held:
        store = self.resolver.store_for(touch)
        key = touch.resource
        if not store.hold(key):
            found = read_lease(store, key, self.now())
            raise _refusal(found, touch) if found is not None else LeaseHeld(
                f"{touch.describe()} is held by a live drill ({store.where}); nothing was touched")
        try:
            for _ in range(3):
                record = self._record(touch, started)
                tag = store.create(key, record.to_bytes())
                if tag is not None:
                    return _Held(store, record, tag)
                found = read_lease(store, key, self.now())
                if found is not None:
                    raise _refusal(found, touch)
                # released between our create and our read: try again
            raise LeaseHeld(f"{touch.describe()} keeps changing hands; nothing was touched")
        except BaseException:
            store.unhold(key)
            raise

    def _check_overlaps(self, wanted: list[Touch]) -> None:
        stores = {id(h.store): h.store for h in self.held}
        for found in list_leases(stores.values(), self.now()):
            if found.record.token == self.token:
                continue
            for touch in wanted:
                if overlaps(found.record.touch, touch):
                    raise _refusal(found, touch)

    # -- progress --------------------------------------------------------------------------------

    def note_phase(self, phase: str) -> None:
        """Record the phase reached, in every lease, before the phase starts."""
        self.phase = phase
        self._write_all()

    def add_safety_copy(self, kind: str, location: str, **detail: Any) -> None:
        """Record a safety copy in every lease of the drill (before it is taken, so a drill killed
        while taking it still says where to look)."""
        rec = SafetyRecord(kind, location, detail)
        self.safety = [s for s in self.safety if s.location != location] + [rec]
        self._write_all()

    def _write_all(self) -> None:
        with self._lock:
            for h in self.held:
                now = self.now()
                new = replace(h.record, phase=self.phase, safety_copies=tuple(self.safety),
                              renewed=now, expires=now + timedelta(seconds=self.ttl_s))
                tag = h.store.replace(h.record.resource, new.to_bytes(), h.tag)
                if tag is None:
                    msg = (f"lease on {h.record.resource} was taken over by another process "
                           f"(recover?) during the drill")
                    if msg not in self.problems:
                        self.problems.append(msg)
                    raise Inconclusive(msg)
                h.record, h.tag = new, tag

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                self._write_all()
            except Exception as exc:  # noqa: BLE001 - keep renewing; the next try may work
                # one missed renewal is harmless; a lease that expired meanwhile is not: another
                # driller may have taken this drill for an orphan
                expired = [h.record.resource for h in self.held if h.record.expires <= self.now()]
                msg = (f"lease on {', '.join(expired)} expired: renewal failed "
                       f"({type(exc).__name__}: {exc})")
                if expired and msg not in self.problems:
                    self.problems.append(msg)

    # -- release ---------------------------------------------------------------------------------

    def stop_renewing(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        _ACTIVE.pop(self.drill_id, None)

    def release(self) -> None:
        """Give every lease back (a lease taken over by someone else is left alone)."""
        self.stop_renewing()
        with self._lock:
            for h in reversed(self.held):
                try:
                    h.store.remove(h.record.resource, h.tag)
                except Exception as exc:  # noqa: BLE001 - give back every other lease anyway
                    self.problems.append(f"could not release the lease on {h.record.resource} "
                                         f"({h.store.where}): {type(exc).__name__}: {exc}")
                finally:
                    h.store.unhold(h.record.resource)
            self.held = []

    def keep_as_orphan(self, phase: str) -> None:
        """The drill could not leave the target as found: keep the leases (phase says why), so
        every driller is refused and `drillbook recover` finds them once this process exits."""
        try:
            self.note_phase(phase)
        except Exception as exc:  # noqa: BLE001 - the leases stay either way
            self.problems.append(f"could not mark the leases {phase}: {type(exc).__name__}: {exc}")
        finally:
            self.stop_renewing()
            for h in self.held:
                h.store.unhold(h.record.resource)


def _refusal(found: FoundLease, touch: Touch) -> Inconclusive:
    r = found.record
    if found.state is LeaseState.ORPHAN:
        return LeaseOrphaned(
            f"{touch.describe()} is under the lease of an ORPHANED drill: {r.holder()} died at "
            f"{r.phase} ({found.why}); it may have left the target broken. Run `drillbook "
            f"recover` to put it back from its safety copy; nothing was touched")
    return LeaseHeld(f"{touch.describe()} is held by {r.holder()}, phase {r.phase} "
                     f"(lease {r.resource} in {found.store.where}); nothing was touched")


#: The leases of the drills running in this process, by drill id (scenarios record safety
#: copies through :func:`record_safety_copy` without being handed the lease object).
_ACTIVE: dict[str, DrillLeases] = {}


def active(drill_id: str) -> DrillLeases | None:
    return _ACTIVE.get(drill_id)


def note_phase(drill_id: str, phase: str, *, strict: bool = True) -> None:
    """Record the phase in the drill's leases. Not strict (after inject): a failure to write is
    kept in the drill's lease problems, never allowed to stop revert."""
    leases = _ACTIVE.get(drill_id)
    if leases is None:
        return
    try:
        leases.note_phase(phase)
    except Exception as exc:
        if strict:
            raise
        msg = f"could not record phase {phase} in the leases: {type(exc).__name__}: {exc}"
        if msg not in leases.problems:
            leases.problems.append(msg)


def record_safety_copy(drill_id: str, kind: str, location: str, **detail: Any) -> None:
    """Record a safety copy in the drill's leases; a no-op outside a leased drill."""
    leases = _ACTIVE.get(drill_id)
    if leases is not None:
        leases.add_safety_copy(kind, location, **detail)


def take_over(found: FoundLease, ttl_s: float = TAKEOVER_TTL_S) -> FoundLease | None:
    """Make this process the holder of an orphan's lease (keeping who died, where and when), so
    no other recover works on it meanwhile; None when the lease changed in between."""
    r = found.record
    now = utc_now()
    died = r.orphaned_from or {"host": r.host, "pid": r.pid, "phase": r.phase}
    new = replace(r, host=this_host(), pid=os.getpid(), renewed=now,
                  expires=now + timedelta(seconds=ttl_s), phase="recovering",
                  token=secrets.token_hex(8), orphaned_from=died)
    if not found.store.hold(r.resource):
        return None
    tag = found.store.replace(r.resource, new.to_bytes(), found.tag)
    if tag is None:
        found.store.unhold(r.resource)
        return None
    return FoundLease(new, tag, found.store, LeaseState.HELD, "")


def mark(found: FoundLease, phase: str) -> None:
    """Leave a lease in place with a phase saying why (e.g. ``recover-failed``)."""
    new = replace(found.record, phase=phase)
    found.store.replace(found.record.resource, new.to_bytes(), found.tag)
    found.store.unhold(found.record.resource)
