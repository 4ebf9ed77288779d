"""How much room an artifact store has left: so a drill can refuse before it fills the store.

A destructive drill writes a safety copy of everything it may destroy, then the restored copy,
before it reclaims anything. On a store that cannot hold them the drill would itself cause the
outage it rehearses. :func:`store_free_bytes` answers "how many more bytes can be written":

- Ceph (RGW): through the inventory's ``rgw-admin`` target for the same gateway (its ``conf`` is
  the cluster's; the gateway is the one whose ``rgw_frontends`` endpoint is the store's). First
  ``ceph df`` (the data pool's ``max_avail``, which counts replication and the full ratio); a
  cluster without ceph-mgr reports zeros there, so then each OSD's own counters
  (``ceph tell osd.N perf dump``: ``stat_bytes``, ``stat_bytes_used``), up to the cluster's
  ``full_ratio``, divided by the data pool's replica count;
- ``DRILLBOOK_STORE_CAPACITY_BYTES``: a declared capacity, minus what the store's buckets hold
  (for stores with no admin access);
- otherwise unknown (AWS S3 has no limit to check): the caller records that it was not checked.

:func:`require_room` raises Inconclusive when the bytes a drill will write, plus a reserve, do
not fit.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from harness.errors import Inconclusive
from harness.inventory import Inventory, RgwAdminTarget

#: bytes always left free on top of what a drill writes (BlueStore metadata, RGW's own pools,
#: other writers during the drill); override with DRILLBOOK_STORE_RESERVE_BYTES
DEFAULT_RESERVE = 1024**3
_FRONTEND = re.compile(r"^\s*rgw_frontends\s*=.*endpoint=([\w.\-\[\]:]+)", re.MULTILINE)


@dataclass(frozen=True)
class StoreSpace:
    store: str
    free_bytes: int | None  # None: not known
    total_bytes: int | None
    source: str  # where the figure came from, or why there is none


def store_free_bytes(inventory: Inventory, store: str, *, timeout_s: float = 60.0) -> StoreSpace:
    """Bytes that can still be written to the S3 target ``store`` (see the module docstring)."""
    endpoint = inventory.s3(store).endpoint
    admin = _admin_for(inventory, endpoint)
    if admin is not None:
        return _ceph_space(store, admin, timeout_s)
    declared = os.environ.get("DRILLBOOK_STORE_CAPACITY_BYTES")
    if declared:
        return StoreSpace(store, None, int(declared),
                          "declared (DRILLBOOK_STORE_CAPACITY_BYTES), usage unknown")
    return StoreSpace(store, None, None, f"unknown: no rgw-admin target serves {endpoint}")


def require_room(inventory: Inventory, store: str, needed_bytes: int, what: str) -> StoreSpace:
    """Raise Inconclusive unless ``needed_bytes`` plus the reserve fit in ``store``; returns the
    space found (free_bytes None: not checked, say so in the evidence)."""
    space = store_free_bytes(inventory, store)
    reserve = int(os.environ.get("DRILLBOOK_STORE_RESERVE_BYTES", DEFAULT_RESERVE))
    if space.free_bytes is not None and needed_bytes + reserve > space.free_bytes:
        raise Inconclusive(
            f"store {store} lacks room for the safety copy: {what} needs "
            f"{_gib(needed_bytes)} plus a reserve of {_gib(reserve)}, and {_gib(space.free_bytes)} "
            f"is free ({space.source}); nothing was touched (`drillbook gc` reclaims what "
            f"earlier drills left: redundant safety copies, unfinished uploads, deleted data "
            f"RGW has not collected yet)")
    return space


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f} GiB"


def admin_for_store(inventory: Inventory, store: str) -> RgwAdminTarget | None:
    """The ``rgw-admin`` target of the gateway that serves the S3 target ``store``, if any."""
    return _admin_for(inventory, inventory.s3(store).endpoint)


def _admin_for(inventory: Inventory, endpoint: str) -> RgwAdminTarget | None:
    want = urlsplit(endpoint)
    for target in inventory.targets.values():
        if not isinstance(target, RgwAdminTarget):
            continue
        try:
            found = _FRONTEND.search(target.conf.read_text())
        except OSError:
            continue
        if found is None:
            continue
        host, _, port = found.group(1).rpartition(":")
        if port == str(want.port or (443 if want.scheme == "https" else 80)) and \
                host.strip("[]") in (want.hostname, "0.0.0.0", "::"):
            return target
    return None


def _ceph_space(store: str, admin: RgwAdminTarget, timeout_s: float) -> StoreSpace:
    exe = shutil.which("ceph")
    if exe is None:
        return StoreSpace(store, None, None, "unknown: the ceph CLI is not installed")

    def ceph(*args: str) -> Any:
        proc = subprocess.run([exe, "-c", str(admin.conf), "--connect-timeout",
                               str(int(timeout_s)), *args, "--format", "json"],
                              capture_output=True, text=True, timeout=timeout_s + 5,
                              check=False, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise Inconclusive(f"ceph {' '.join(args)} failed (exit {proc.returncode}): "
                               f"{proc.stderr.strip()[-300:]}")
        return json.loads(proc.stdout)

    try:
        df = ceph("df")
        for pool in df.get("pools", []):
            if str(pool.get("name", "")).endswith("rgw.buckets.data"):
                stats = pool.get("stats", {})
                if df.get("stats", {}).get("total_bytes"):
                    return StoreSpace(store, int(stats.get("max_avail", 0)),
                                      int(df["stats"]["total_bytes"]), "ceph df (data pool)")
        # no ceph-mgr: the monitors know no usage; ask every OSD that is up and in
        osd_map = ceph("osd", "dump")
        full = float(osd_map.get("full_ratio", 0.95))
        size = max([int(p.get("size", 1)) for p in osd_map.get("pools", [])
                    if str(p.get("pool_name", "")).endswith("rgw.buckets.data")] or [1])
        total = usable = 0
        for osd in osd_map.get("osds", []):
            if not (osd.get("up") and osd.get("in")):
                continue
            counters = ceph("tell", f"osd.{osd['osd']}", "perf", "dump")["osd"]
            total += int(counters["stat_bytes"])
            usable += max(0, int(counters["stat_bytes"] * full) - int(counters["stat_bytes_used"]))
        return StoreSpace(store, usable // size, total,
                          f"ceph OSD counters up to full_ratio {full:.2f}, pool size {size}")
    except (OSError, ValueError, KeyError, subprocess.TimeoutExpired) as exc:
        return StoreSpace(store, None, None, f"unknown: ceph did not answer ({exc})")
