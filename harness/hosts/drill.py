"""The runner's hook: run the checks of the hosts a drill depends on, record and judge them.

:func:`preflight` runs before the scenario's preflight: any check missed or unable to run stops
the drill INCONCLUSIVE with reasons that say what to fix, before anything is touched.
:func:`verify` runs after the scenario's verify: a missed check is a FAIL, one that could not run
INCONCLUSIVE. Every check becomes a :class:`~harness.model.HostCheck` in the evidence
(``host_checks``) and an objective (``harness/verdict.py``).

A host is linked to a drill when it lists the drill's asset, or one of the targets the asset
uses (its store, backup repository, serving endpoint, balancer, orchestrator, nodes) or a backup
job that writes the asset's backup repository.
"""

from __future__ import annotations

import weakref
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from harness.context import DrillContext
from harness.errors import Inconclusive
from harness.hosts.backend import Host
from harness.hosts.checks import (
    CheckResult,
    clock,
    credential_file,
    free_space,
    mount,
    serving,
    tool_version,
)
from harness.hosts.site import run_site_check
from harness.hosts.spec import HostSpec
from harness.integrity import Manifest
from harness.inventory import Asset, Inventory
from harness.model import HostCheck, Phase

_RECORDED: weakref.WeakKeyDictionary[DrillContext, list[HostCheck]] = \
    weakref.WeakKeyDictionary()


def linked_hosts(inventory: Inventory, asset: Asset) -> list[HostSpec]:
    used = {asset.store, asset.backup, asset.served_by, asset.balancer, asset.orchestrator,
            *asset.nodes}
    used |= {j.name for j in inventory.jobs("backup")
             if asset.backup is not None and j.repository == asset.backup}
    return [h for h in inventory.hosts.values()
            if asset.id in h.assets or used & set(h.targets)]


def recorded(ctx: DrillContext) -> tuple[HostCheck, ...]:
    """Every host check this drill ran, in order (for the evidence)."""
    return tuple(_RECORDED.get(ctx, ()))


def asset_manifest(ctx: DrillContext) -> Manifest | None:
    """The asset's manifest as the store holds it now (None: no manifest, or unreadable)."""
    a = ctx.asset
    if a.database is not None or not a.bucket or not a.manifest_key:
        return None
    try:
        data = ctx.adapters.s3(a.store).read_bytes(a.bucket, a.manifest_key)
        return None if data is None else Manifest.from_bytes(data)
    except Exception:  # noqa: BLE001 - any store error: the size is then unknown, and said so
        return None


def run_host(host: Host, spec: HostSpec, asset: str, manifest: Manifest | None,
             phase: Phase) -> list[CheckResult]:
    """Every check declared for one host, built-in first, then the site's own."""
    size = None if manifest is None else sum(f.size for f in manifest.files)
    now = _wall
    out = [free_space(host, p, asset, size) for p in spec.paths]
    out += [tool_version(host, t, pin) for t, pin in spec.tools]
    out += [credential_file(host, c, now) for c in spec.credentials]
    if spec.clock_tolerance_s is not None:
        out.append(clock(host, spec.clock_tolerance_s, _wall, spec.declared_in))
    out += [mount(host, m) for m in spec.mounts]
    for s in spec.serving:
        # the loaded files match the manifest only once the asset is back
        out += serving(host, s, manifest if phase is Phase.VERIFY else None)
    out += [run_site_check(host, c) for c in spec.checks]
    return out


def _wall() -> datetime:
    # the clock check compares real wall clocks, whatever clock the drill's journal uses
    from harness.model import utc_now
    return utc_now()


def _checks_of(ctx: DrillContext, spec: HostSpec, manifest: Manifest | None,
               phase: Phase) -> list[CheckResult]:
    host = None
    try:
        host = ctx.adapters.host(spec.name)
        return run_host(host, spec, ctx.asset.id, manifest, phase)
    except Inconclusive as exc:
        return [CheckResult("reachable", f"{spec.backend} access", str(exc), None,
                            f"{spec.name}: make it reachable ({exc})")]
    finally:
        if host is not None:
            host.close()


def _run(ctx: DrillContext, phase: Phase) -> list[tuple[HostCheck, str]]:
    results: list[tuple[HostCheck, str]] = []
    specs = linked_hosts(ctx.inventory, ctx.asset)
    manifest = asset_manifest(ctx) if specs else None
    # hosts are checked side by side (each waits on its own round trips); recorded in order
    with ThreadPoolExecutor(max_workers=max(1, min(len(specs), 4))) as pool:
        per_host = list(pool.map(lambda s: _checks_of(ctx, s, manifest, phase), specs))
    for spec, checks in zip(specs, per_host, strict=True):
        for c in checks:
            record = HostCheck(spec.name, spec.backend, phase, c.check, c.expected, c.found,
                               c.ok)
            _RECORDED.setdefault(ctx, []).append(record)
            ctx.journal.note("host-check", **record.to_json())
            results.append((record, c.fix or f"{spec.name}: {c.check}: found {c.found}"))
    if results:
        missed = sum(1 for r, _ in results if r.ok is not True)
        ctx.event(f"host-checks.{phase.value}", checks=len(results), missed=missed)
        ctx.progress(f"  host checks ({phase.value}): {len(results) - missed} of "
                     f"{len(results)} ok")
    return results


def preflight(ctx: DrillContext) -> None:
    """Before anything is touched: raise Inconclusive, saying what to fix, if any check is not
    met."""
    bad = [fix for record, fix in _run(ctx, Phase.PREFLIGHT) if record.ok is not True]
    if bad:
        raise Inconclusive("host checks not met before the drill, nothing was touched: "
                           + "; ".join(bad))


def verify(ctx: DrillContext) -> None:
    """After recovery: a missed check fails the drill, one that could not run makes it
    inconclusive."""
    from harness.verdict import host_objective
    for record, _ in _run(ctx, Phase.VERIFY):
        if record.ok is False:
            ctx.fail(host_objective(record).message)
        elif record.ok is None:
            ctx.inconclusive(host_objective(record).message)
