"""Scenario ``node-cache-full``: a GPU node's model cache volume fills up.

A node that restarts pulls its weights into its cache volume before it can serve; when the volume
is full (stale models, leftover partial downloads, another tenant's files), the pull fails at
3 a.m. and nothing else warns first. Only a host check sees it: the store, the backups and the
endpoint are all fine.

The fault: stale blobs (sparse files, so they cost no disk) are written into the cache path the
inventory declares for the host serving the asset, until less than half the model fits. Detection
is the host check itself (free space on the cache path against the model's size times the
declared factor). The runbook:

  inspect      what fills the cache: the node's pull directories and loose files
  evict        remove the loose files (partial downloads, stale blobs): the node keeps each pull
               in a directory of its own, so a loose file is nothing it serves from
  check-room   a whole copy of the model fits (the node's own pull would fail otherwise)
  redeploy, smoke-test, mark-ready
               the serving steps of the runbook library (harness/runbook/serving.py): the node
               re-pulls (pull, SHA-256, swap), answers the golden inputs bit-identically, is ready

Verification: the free-space host check passes again, every model file in the cache hashes to
the store's manifest (integrity), and the golden outputs are identical (smoke). Revert removes
this drill's blobs if any are left and makes sure the node serves as before. The lab's node does not enforce the cache budget itself
(``capacity_bytes`` is declared in the inventory), so the pull step checks it, as stated above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from harness.blast import Touch, TouchKind
from harness.errors import Inconclusive, StepFailed
from harness.hosts.backend import Host
from harness.hosts.checks import CheckResult, free_space, size
from harness.hosts.drill import asset_manifest, linked_hosts
from harness.hosts.spec import HostSpec, SpacePath
from harness.integrity import Manifest
from harness.model import RestorePoint
from harness.runbook import serving
from harness.scenario import RunbookStep, Scenario

if TYPE_CHECKING:
    from harness.context import DrillContext

BLOB_PREFIX = "stale-blob-"


class NodeCacheFull(Scenario):
    name: ClassVar[str] = "node-cache-full"
    summary: ClassVar[str] = "fill a GPU node's model cache volume; evict, re-pull, verify"
    variants: ClassVar[tuple[str, ...]] = ("evict",)
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    tiers: ClassVar[tuple[int, ...]] = (1, 2)
    blast_radius: ClassVar[str] = ("the model cache path of the host serving the asset (stale "
                                   "blobs written and evicted) and a reload of its model")

    spec: HostSpec
    path: SpacePath
    manifest: Manifest
    model_bytes: int

    def __init__(self, ctx: DrillContext) -> None:
        super().__init__(ctx)
        self.served = serving.ServingState()

    # -- what the drill works on ----------------------------------------------------------------

    def _served_by(self) -> str:
        served = self.ctx.asset.served_by
        if served is None:
            raise Inconclusive(f"asset {self.ctx.asset.id} names no serving endpoint (served_by)")
        return served

    def touches(self) -> list[Touch]:
        served = self._served_by()
        return [Touch(served, TouchKind.NODE, f"{served}: model cache and reload")]

    @property
    def host(self) -> Host:
        return self.ctx.adapters.host(self.spec.name)

    def _space(self) -> CheckResult:
        return free_space(self.host, self.path, self.ctx.asset.id, self.model_bytes)

    def _entries(self) -> dict[str, bool]:
        """Top-level cache entries -> whether each is a directory (a pull the node made)."""
        out = self.host.run("cd -- %s && for e in * .[!.]*; do [ -e \"$e\" ] || continue; "
                            "if [ -d \"$e\" ]; then echo \"pull $e\"; "
                            "else echo \"other $e\"; fi; done", self.path.path)
        if out.rc != 0:
            raise Inconclusive(f"{self.spec.name}: cannot list {self.path.path}: "
                               f"{out.stderr.strip()}")
        return {line.split(" ", 1)[1]: line.startswith("pull ")
                for line in out.stdout.splitlines() if " " in line}

    # -- phases ---------------------------------------------------------------------------------

    def preflight(self) -> None:
        served = self._served_by()
        for spec in linked_hosts(self.ctx.inventory, self.ctx.asset):
            if served in spec.targets and spec.paths:
                self.spec, self.path = spec, spec.paths[0]
                break
        else:
            raise Inconclusive(f"no host in the inventory serves {served} with a cache path "
                               f"(hosts.<name>.targets and paths)")
        manifest = asset_manifest(self.ctx)
        if manifest is None:
            raise Inconclusive(f"the manifest of {self.ctx.asset.id} cannot be read")
        self.manifest = manifest
        self.model_bytes = sum(f.size for f in manifest.files)
        serving.preflight(self.ctx, self.served, required_by=self.name)

    def baseline(self) -> None:
        serving.record_reference(self.ctx, self.served)
        space = self._space()
        self.ctx.event("baseline.cache", path=self.path.path, free=space.found,
                       model_bytes=self.model_bytes)

    def inject(self) -> None:
        free = self._free_bytes()
        blob = max(free - self.model_bytes // 2, 1)
        name = f"{self.path.path}/{BLOB_PREFIX}{self.ctx.drill_id}"
        out = self.host.run("truncate -s %s -- %s", str(blob), name)
        if out.rc != 0:
            raise StepFailed(f"cannot write {name}: {out.stderr.strip()}")
        self.ctx.event("fault.cache-filled", path=self.path.path, blob_bytes=blob)

    def _free_bytes(self) -> int:
        r = self._space()
        if r.measured is None:
            raise Inconclusive(f"free space on {self.path.path} cannot be measured: {r.found}")
        return r.measured

    def detect(self) -> bool:
        return self._space().ok is False

    def runbook(self) -> list[RunbookStep]:
        return [
            RunbookStep("inspect", self.inspect, "what fills the cache"),
            RunbookStep("evict", self.evict, "remove loose files: partial downloads, stale blobs"),
            RunbookStep("check-room", self.check_room, "a whole copy of the model fits"),
            *serving.steps(self.ctx, self.served),
        ]

    def inspect(self) -> None:
        entries = self._entries()
        other = sorted(e for e, pull in entries.items() if not pull)
        self.ctx.findings.sections["cache"] = {
            "host": self.spec.name, "path": self.path.path, "at_detection": self._space().found,
            "entries": len(entries), "loose_files": len(other)}

    def evict(self) -> None:
        for entry, pull in self._entries().items():
            if not pull:
                out = self.host.run("rm -rf -- %s", f"{self.path.path}/{entry}")
                if out.rc != 0:
                    raise StepFailed(f"cannot evict {entry}: {out.stderr.strip()}")
        self.ctx.findings.sections.setdefault("cache", {})["after_evict"] = self._space().found

    def check_room(self) -> None:
        free = self._free_bytes()
        if free < self.model_bytes:
            raise StepFailed(f"{self.spec.name}: {self.path.path} has {size(free)} free, the "
                             f"model is {size(self.model_bytes)}: the node cannot pull it")
        self._restore_point()

    def _restore_point(self) -> None:
        a = self.ctx.asset
        versions = [v for v in self.ctx.adapters.s3(a.store).list_versions(a.bucket,
                                                                           a.manifest_key)
                    if v.key == a.manifest_key and v.is_latest and not v.is_delete_marker]
        if not versions:
            raise Inconclusive(f"the manifest {a.manifest_key} has no current version")
        v = versions[0]
        # the store was never damaged: the node pulled its current version, nothing was lost
        self.ctx.findings.restore_point = RestorePoint(
            "bucket-version", v.version_id, v.last_modified, f"s3://{a.bucket}/{a.prefix}",
            continuous=True)

    def verify(self) -> None:
        space = self._space()
        if space.ok is not True:
            self.ctx.fail(f"after recovery: {space.fix or space.found}")
        res = self.host.run("find -L %s -type f -name '*' -exec sha256sum {} +", self.path.path)
        found: dict[str, str] = {}
        for line in res.stdout.splitlines():
            digest, _, path = line.partition("  ")
            found[path] = digest
        for f in self.manifest.files:
            # the newest copy of each file in the cache (the node keeps only its current pull)
            copies = sorted(p for p in found if p.endswith("/" + f.path) and "/pull-" in p)
            actual = found[copies[-1]] if copies else None
            self.ctx.integrity(f"{self.spec.name}:{f.path}", f.sha256, actual)
        serving.verify_outputs(self.ctx, self.served)

    def revert(self) -> None:
        blobs = [e for e in self._entries() if e.startswith(BLOB_PREFIX + self.ctx.drill_id)]
        for blob in blobs:
            self.host.run("rm -f -- %s", f"{self.path.path}/{blob}")
        serving.reload_if_needed(self.ctx, self.served)
        if any(e.startswith(BLOB_PREFIX + self.ctx.drill_id) for e in self._entries()):
            raise StepFailed("this drill's stale blobs are still in the cache")
