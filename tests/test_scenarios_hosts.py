"""Lab-free unit tests of ``node-cache-full`` on in-memory fakes (a store, the serving node, the
node's host filesystem: harness/fakes/host.py) and a manual clock: a correct recovery PASSes, a
sabotaged one FAILs, a missing precondition is INCONCLUSIVE with nothing touched, and an
exception in the runbook still reverts (this drill's blobs gone, the node serving as before)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from scenario_kit import (  # noqa: F401 - provenance_once is an autouse fixture
    START,
    drill,
    provenance_once,
    raises,
    skip,
    step_names,
    unit_inventory,
)

from harness.fakes.host import FakeHost
from harness.fakes.inference import FakeEndpoint
from harness.fakes.store import FakeStore
from harness.inventory import Inventory
from harness.journal import ManualClock
from harness.model import Evidence, Verdict
from harness.runner import StepOverride
from scenarios.node_cache_full import BLOB_PREFIX, NodeCacheFull

ASSET, BUCKET, PREFIX = "lab-mlp-weights", "drillbook-models", "lab-mlp/"
CACHE = "/var/cache/drillbook/models"
MiB = 1 << 20
MODEL = {"model-00001-of-00002.safetensors": b"\x01" * 300_000,
         "model-00002-of-00002.safetensors": b"\x02" * 200_000,
         "config.json": b'{"layers": 2}'}
#: the cache path's budget: the model twice over (factor 2) and a little more
BUDGET = 2 * MiB


def manifest(files: dict[str, bytes]) -> bytes:
    return json.dumps({"format": "drillbook-manifest/1", "model": "lab-mlp",
                       "created_utc": START.isoformat(),
                       "files": [{"path": p, "size": len(d),
                                  "sha256": hashlib.sha256(d).hexdigest()}
                                 for p, d in sorted(files.items())]}).encode()


class Site:
    def __init__(self, root: Path, *, hosts: bool = True) -> None:
        self.root = root
        self.clock = ManualClock(START)
        node = {"backend": "local", "targets": ["inference"],
                "paths": [{"path": CACHE, "factor": 2, "capacity_bytes": BUDGET}]}
        self.inventory: Inventory = unit_inventory(root, **({"hosts": {"gpu-node-1": node}}
                                                           if hosts else {}))
        # golden inputs only: the node's answers before the fault are the reference
        (root / "golden" / "lab-mlp.json").write_text(json.dumps({"inputs": [[0.5, 1.0]]}))
        self.store = FakeStore(self.inventory.s3("artifact-store"), now=self.clock.utc)
        self.store.create_bucket(BUCKET, versioned=True)
        for path, data in MODEL.items():
            self.store.put_bytes(BUCKET, PREFIX + path, data)
        self.store.put_bytes(BUCKET, PREFIX + "manifest.json", manifest(MODEL))
        self.host = FakeHost(self.inventory.hosts["gpu-node-1"]) if hosts else None
        self.pulls = 0
        self.node = FakeEndpoint(self.inventory.inference("inference"), self.store, BUCKET,
                                 PREFIX + "manifest.json", load_s=2.0)
        self.node.pulled = self.pull
        ok, why = self.node.load(timeout_s=1)
        assert ok, why
        self.node.advance = self.clock.advance
        if self.host is not None:  # what the node leaves behind besides its pull
            self.host.write(f"{CACHE}/.partial-download", b"x" * 1000)

    def pull(self, files: dict[str, bytes]) -> None:
        """The node's pull: a new folder of its own, the previous one dropped."""
        if self.host is None:
            return
        self.pulls += 1
        for e in self.host.entries(CACHE):
            if e.startswith("pull-"):
                self.host.remove_tree(f"{CACHE}/{e}")
        for path, data in files.items():
            self.host.write(f"{CACHE}/pull-{self.pulls:04d}/{path}", data)

    @property
    def adapters(self) -> dict[str, object]:
        out: dict[str, object] = {"artifact-store": self.store, "inference": self.node}
        if self.host is not None:
            out["host:gpu-node-1"] = self.host
        return out

    def blobs(self) -> list[str]:
        assert self.host is not None
        return [e for e in self.host.entries(CACHE) if e.startswith(BLOB_PREFIX)]

    def drill(self, overrides: dict[str, StepOverride] | None = None) -> Evidence:
        return drill(self.inventory, NodeCacheFull, "evict", ASSET, self.adapters, self.clock,
                     self.root, overrides)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path)


def test_a_full_cache_evicted_and_re_pulled_passes(site: Site) -> None:
    answers = site.node.infer([[0.5, 1.0]])
    ev = site.drill()
    assert ev.verdict is Verdict.PASS, ev.reasons
    assert step_names(ev) == ["inspect", "evict", "check-room", "redeploy", "smoke-test",
                              "mark-ready"]
    cache = ev.sections["cache"]
    assert cache["loose_files"] == 2  # the partial download and this drill's blob
    assert ev.integrity and all(c.ok for c in ev.integrity)
    assert {c.object.rsplit(":", 1)[1] for c in ev.integrity} == set(MODEL)
    assert ev.rto.measured_s == pytest.approx(2.0) and ev.rto.met is True  # one reload
    assert [(h.phase.value, h.ok) for h in ev.host_checks] == [("preflight", True),
                                                              ("verify", True)]
    assert ev.reverted and site.blobs() == [] and site.node.infer([[0.5, 1.0]]) == answers
    assert site.pulls == 2  # the pull before the drill, then the redeploy (revert needs none)


def test_a_recovery_that_evicts_nothing_fails_and_revert_removes_the_blob(site: Site) -> None:
    ev = site.drill({"evict": skip})
    assert ev.verdict is Verdict.FAIL, ev.reasons
    assert any("the node cannot pull it" in r for r in ev.reasons), ev.reasons
    assert ev.rto.measured_s is None
    assert ev.reverted and site.blobs() == []
    assert site.host is not None and ".partial-download" in site.host.entries(CACHE)


def test_a_recovery_that_never_re_pulls_fails_on_the_host_check(site: Site) -> None:
    """The cache was emptied of this pull too (a too-eager eviction) and nothing re-pulled: the
    integrity of the cached model cannot be shown."""
    def evict_everything(ctx: object, original: object) -> None:
        assert site.host is not None
        for e in site.host.entries(CACHE):
            site.host.remove_tree(f"{CACHE}/{e}")

    ev = site.drill({"evict": evict_everything, "redeploy": skip})
    assert ev.verdict is Verdict.FAIL, ev.reasons
    assert [c.ok for c in ev.integrity] == [False] * len(MODEL)
    assert ev.reverted and site.blobs() == []


def test_without_a_host_declared_it_is_inconclusive_and_touches_nothing(tmp_path: Path) -> None:
    site = Site(tmp_path, hosts=False)
    loads = site.node.loads
    ev = site.drill()
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("no host in the inventory serves inference" in r for r in ev.reasons), ev.reasons
    assert not any(t.event == "fault.injected" for t in ev.timeline)
    assert site.node.loads == loads


def test_an_unreachable_host_is_inconclusive_before_anything_is_touched(site: Site) -> None:
    assert site.host is not None
    site.host.unreachable = True
    ev = site.drill()
    site.host.unreachable = False
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert any("connection refused" in r for r in ev.reasons), ev.reasons
    assert not any(t.event == "fault.injected" for t in ev.timeline)
    assert site.blobs() == []


def test_an_exception_in_the_runbook_still_reverts(site: Site) -> None:
    answers = site.node.infer([[0.5, 1.0]])
    ev = site.drill({"evict": raises(RuntimeError("ssh connection reset"))})
    assert ev.verdict is Verdict.FAIL
    assert any("evict" in r and "connection reset" in r for r in ev.reasons), ev.reasons
    assert ev.reverted and site.blobs() == []
    assert site.node.infer([[0.5, 1.0]]) == answers
