"""``drillbook gc``: give back the store space drills left behind, and nothing else.

A destructive drill writes into the store it drills: a safety copy of every version under the
asset's prefix (in the safety bucket), the restored copy, the versions revert replays. A revert
that succeeds discards its own safety copy and removes the versions it replaced. What can still
be left, and what this module does with it:

- **safety copies** (``s3://<safety bucket>/<drill id>/``) of drills whose revert failed, that
  died, or that were stopped between taking the copy and recording its discard. One is removed
  only when it is redundant: no lease (held or orphaned, on any of the site's lease stores)
  records it, so neither a running drill nor ``drillbook recover`` needs it; it is older than
  ``min_age_s``; and every version it holds is still in the store as it was found (the prefix's
  found history is still there, oldest first; newer versions written since do not matter). A
  copy that is the only remaining way back is kept and reported, never removed;
- **multipart uploads** begun and never completed or aborted (a drill killed mid-restore): their
  parts hold space no listing shows; aborted once older than ``min_age_s``, only in the buckets
  of the inventory's assets and the safety bucket, only on drill-safe stores;
- **deleted data Ceph has not collected yet**: RGW frees deleted objects' data only when its
  garbage collector runs (every 2 hours by default); with an ``rgw-admin`` target for the store,
  ``radosgw-admin gc process --include-all`` collects it now.

Lease objects (``drillbook-leases/`` in the safety bucket) are never touched. ``dry_run`` lists
what would be reclaimed and changes nothing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from harness.errors import DrillbookError, GuardRefused
from harness.model import utc_now

# The rest is imported where it is used: the command line registers this command's options
# (add_parser) on every start, and these would bring boto3, kubernetes and psycopg with them.
if TYPE_CHECKING:
    from harness.guards import FoundVersion
    from harness.inventory import Inventory, RgwAdminTarget
    from harness.lease import FoundLease
    from harness.targets.s3 import ObjectVersion, S3Store

#: A safety copy or an upload younger than this may belong to a drill that is writing it now.
DEFAULT_MIN_AGE_S = 3600.0
RGW_GC_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class GcItem:
    """One thing found: what it is, where, how big, and what was done with it and why."""

    kind: str  # "safety-copy", "multipart-upload", "rgw-gc"
    location: str
    bytes: int | None
    action: str  # "removed", "would remove", "kept", "ran", "would run", "failed"
    why: str


@dataclass
class GcReport:
    items: list[GcItem] = field(default_factory=list)
    #: what could not be checked (a lease store or a store that did not answer): nothing that
    #: depends on it was removed
    unchecked: list[str] = field(default_factory=list)

    @property
    def reclaimed_bytes(self) -> int:
        return sum(i.bytes or 0 for i in self.items if i.action in ("removed", "would remove"))

    @property
    def exit_code(self) -> int:
        """0 done (kept copies are not a failure), 2 something could not be checked or run."""
        return 2 if self.unchecked or any(i.action == "failed" for i in self.items) else 0

    def lines(self) -> list[str]:
        out = [f"{i.action:12s} {i.kind:16s} {i.location}"
               + (f" ({_size(i.bytes)})" if i.bytes else "") + f": {i.why}" for i in self.items]
        out += [f"{'unchecked':12s} {u}" for u in self.unchecked]
        verb = "would reclaim" if any(i.action.startswith("would") for i in self.items) \
            else "reclaimed"
        out.append(f"gc: {verb} {_size(self.reclaimed_bytes)} in safety copies; "
                   f"{sum(1 for i in self.items if i.kind == 'multipart-upload')} unfinished "
                   f"upload(s); {sum(1 for i in self.items if i.action == 'kept')} kept")
        return out


def _size(n: int | None) -> str:
    return "0 B" if not n else f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def drill_stores(inventory: Inventory) -> list[str]:
    """The drill-safe S3 targets that hold an asset: where drills write safety copies."""
    from harness.inventory import S3Target
    names = [a.store for a in inventory.assets.values()
             if isinstance(inventory.targets.get(a.store), S3Target)]
    return [n for n in dict.fromkeys(names) if inventory.targets[n].drill_safe]


def collect(inventory: Inventory, s3: Callable[[str], S3Store],
            leases: Callable[[], Iterable[FoundLease]], *, min_age_s: float = DEFAULT_MIN_AGE_S,
            dry_run: bool = False, rgw_gc: bool = True, now: datetime | None = None,
            run: Callable[[list[str]], subprocess.CompletedProcess[str]] | None = None
            ) -> GcReport:
    """Reclaim what drills left in the site's stores (see the module docstring)."""
    from harness.capacity import admin_for_store
    now = now or utc_now()
    report = GcReport()
    try:
        recorded = {s.location.rstrip("/") + "/": f.record.drill_id
                    for f in leases() for s in f.record.safety_copies}
    except DrillbookError as exc:
        # without the leases a copy recover still needs cannot be told apart: keep every one
        report.unchecked.append(f"drill leases could not be listed ({exc}): no safety copy "
                                f"was removed")
        recorded = None
    cutoff = now - timedelta(seconds=min_age_s)
    for name in drill_stores(inventory):
        store = s3(name)
        try:
            if recorded is not None:
                _safety_copies(store, inventory.safety_bucket, recorded, cutoff, dry_run, report)
            buckets = {a.bucket for a in inventory.assets.values() if a.store == name}
            for bucket in sorted(buckets | {inventory.safety_bucket}):
                _uploads(store, bucket, cutoff, dry_run, report)
        except DrillbookError as exc:
            report.unchecked.append(f"store {name}: {exc}")
            continue
        if rgw_gc:
            admin = admin_for_store(inventory, name)
            if admin is not None:
                report.items.append(_rgw_gc(admin, dry_run, run or _run))
    return report


def _safety_copies(store: S3Store, bucket: str, recorded: dict[str, str], cutoff: datetime,
                   dry_run: bool, report: GcReport) -> None:
    from harness.lease_stores import LEASE_PREFIX
    try:
        objects = store.list_objects(bucket, "")
    except DrillbookError as exc:
        if getattr(exc, "code", None) == "NoSuchBucket":
            return
        raise
    roots: dict[str, list[tuple[str, int, datetime]]] = {}
    for key, size, modified in objects:
        if not key.startswith(LEASE_PREFIX) and "/" in key:
            roots.setdefault(key.split("/", 1)[0] + "/", []).append((key, size, modified))
    for root, found in sorted(roots.items()):
        where = f"s3://{bucket}/{root}"
        size = sum(s for _, s, _ in found)
        keep = _why_keep(store, bucket, root, where, found, recorded, cutoff)
        if keep:
            report.items.append(GcItem("safety-copy", where, size, "kept", keep))
            continue
        if not dry_run:
            for key, _, _ in found:
                store.delete(bucket, key)
        report.items.append(GcItem("safety-copy", where, size,
                                   "would remove" if dry_run else "removed", _redundant(found)))


def _why_keep(store: S3Store, bucket: str, root: str, where: str,
              found: list[tuple[str, int, datetime]], recorded: dict[str, str],
              cutoff: datetime) -> str:
    """Why this safety copy must stay ("" when it is redundant)."""
    from harness.guards import FOUND_STATE, SafetyCopy
    if where in recorded:
        return (f"recorded in a lease of drill {recorded[where]}: a running drill or "
                f"`drillbook recover` needs it")
    if max(m for _, _, m in found) > cutoff:
        return "written less than the minimum age ago: a drill may be taking it now"
    if not any(k == root + FOUND_STATE for k, _, _ in found):
        return ""  # never completed and no lease names it: nothing can restore from it
    try:
        copy = SafetyCopy.load(store, bucket, root)
    except GuardRefused as exc:
        return f"its {FOUND_STATE} cannot be read ({exc}); check it by hand"
    missing = still_missing(copy.found, store.list_versions(copy.bucket, copy.prefix))
    if missing:
        return (f"s3://{copy.bucket}/{copy.prefix} no longer holds every version it was found "
                f"with ({', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}): this "
                f"copy may be the only way back; run `drillbook recover` or check by hand")
    return ""


def _redundant(found: list[tuple[str, int, datetime]]) -> str:
    from harness.guards import FOUND_STATE
    if not any(k.endswith("/" + FOUND_STATE) for k, _, _ in found):
        return "an unfinished copy (no found-state) that no lease records"
    return "no lease records it and the store still holds every version it copied"


def still_missing(found: list[FoundVersion], now: list[ObjectVersion]) -> list[str]:
    """Keys whose found history (newest first) is no longer the oldest part of their history
    now, in order: a version was lost or replaced. Newer versions on top do not count."""
    have: dict[str, list[tuple[str, int, bool]]] = {}
    for v in now:
        have.setdefault(v.key, []).append((v.etag, v.size, v.is_delete_marker))
    want: dict[str, list[tuple[str, int, bool]]] = {}
    for f in found:
        want.setdefault(f.key, []).append(f.fingerprint)
    return sorted(k for k, w in want.items()
                  if len(have.get(k, [])) < len(w) or have[k][len(have[k]) - len(w):] != w)


def _uploads(store: S3Store, bucket: str, cutoff: datetime, dry_run: bool,
             report: GcReport) -> None:
    try:
        uploads = store.list_uploads(bucket)
    except DrillbookError as exc:
        if getattr(exc, "code", None) == "NoSuchBucket":
            return
        raise
    for key, upload_id, initiated in uploads:
        where = f"s3://{bucket}/{key} (upload {upload_id[:16]})"
        if initiated > cutoff:
            report.items.append(GcItem("multipart-upload", where, None, "kept",
                                       "begun less than the minimum age ago"))
            continue
        if not dry_run:
            store.abort_upload(bucket, key, upload_id)
        report.items.append(GcItem("multipart-upload", where, None,
                                   "would abort" if dry_run else "aborted",
                                   f"begun {initiated.isoformat(timespec='seconds')}, never "
                                   f"completed"))


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=RGW_GC_TIMEOUT_S,
                          check=False, stdin=subprocess.DEVNULL)


def _rgw_gc(admin: RgwAdminTarget, dry_run: bool,
            run: Callable[[list[str]], subprocess.CompletedProcess[str]]) -> GcItem:
    where = f"radosgw-admin -c {admin.conf}"
    if dry_run:
        return GcItem("rgw-gc", where, None, "would run", "collect deleted data now")
    exe = shutil.which(admin.binary) or admin.binary
    try:
        proc = run([exe, "-c", str(admin.conf), "gc", "process", "--include-all"])
    except (OSError, subprocess.TimeoutExpired) as exc:
        return GcItem("rgw-gc", where, None, "failed", str(exc))
    if proc.returncode != 0:
        return GcItem("rgw-gc", where, None, "failed",
                      f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}")
    return GcItem("rgw-gc", where, None, "ran", "deleted data collected now, not on RGW's "
                                                "schedule")


# -- the command --------------------------------------------------------------------------------


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    """Register ``drillbook gc`` (called by harness/cli.py)."""
    from harness import cli_args as a
    gc = sub.add_parser(
        "gc", help="reclaim store space drills left behind (redundant safety copies, "
                   "unfinished uploads, RGW garbage)",
        description="Give back the store space drills left behind, and nothing else: safety "
                    "copies no lease records and whose versions the store still holds, "
                    "multipart uploads never completed, and deleted data Ceph RGW has not "
                    "collected yet. A copy that is the only way back is kept and named.")
    gc.add_argument("--inventory", type=a.existing_file,
                    help="site inventory YAML (default as for run)")
    gc.add_argument("--min-age", type=a.seconds, default=DEFAULT_MIN_AGE_S,
                    help="leave safety copies and uploads younger than this many seconds "
                         f"(default {DEFAULT_MIN_AGE_S:g})")
    gc.add_argument("--dry-run", action="store_true", help="list what would go; change nothing")
    gc.add_argument("--no-rgw-gc", action="store_true",
                    help="do not run RGW's garbage collector (radosgw-admin gc process)")


def cmd_gc(args: argparse.Namespace, inventory: Inventory) -> int:
    """``drillbook gc``: 0 done, 2 something could not be checked (nothing it guards removed)."""
    from pathlib import Path

    from harness.context import Adapters
    from harness.lease import LeaseResolver, list_leases
    from harness.targets.s3 import S3Store
    adapters = Adapters(inventory, Path("evidence") / ".work")
    resolver = LeaseResolver(inventory, adapters.s3, adapters.postgres, adapters.kube)

    def s3(name: str) -> S3Store:
        """The context's own client (the one the lease lookup uses), as its concrete adapter:
        gc lists and aborts multipart uploads, which the drills' protocol does not offer."""
        store = adapters.s3(name)
        if not isinstance(store, S3Store):  # only a test hands adapters in, and not here
            raise TypeError(f"drillbook gc needs the S3 adapter for {name}, not "
                            f"{type(store).__name__}")
        return store

    report = collect(inventory, s3, lambda: list_leases(resolver.all_stores()),
                     min_age_s=args.min_age, dry_run=args.dry_run, rgw_gc=not args.no_rgw_gc)
    print("\n".join(report.lines()))
    return report.exit_code
