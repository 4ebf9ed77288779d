"""The declared blast radius, without a lab: every declared target must be drill-safe, adapters
refuse writes outside the declaration, the evidence prints it, and a drill that stops before
inject only cleans up after itself."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from harness.blast import Fence, Touch, TouchKind, overlaps
from harness.errors import GuardRefused
from harness.inventory import PostgresTarget, S3Target, Secret, load_inventory
from harness.lease import MemoryResolver
from harness.model import Verdict
from harness.runner import DrillRequest, run_drill
from harness.targets.database import Database
from harness.targets.s3 import S3Store
from tests.test_runner import Scripted, make

INVENTORY = """
version: 1
site: test
targets:
  store: {kind: s3, endpoint: "http://127.0.0.1:9", access_key: a, secret_key: b, drill_safe: true}
  registry-db: {kind: postgres, host: 127.0.0.1, port: 9, user: u, password: p, drill_safe: false}
assets:
  - {id: w, tier: 1, kind: model-weights, store: store, bucket: b, prefix: p/}
objectives:
  tiers: {1: {rto_s: 60, rpo_s: 3600}}
probe: {interval_s: 0.01, detect_timeout_s: 0.2}
"""


def run(tmp_path: Path, cls: type[Scripted], dry_run: bool = False):  # type: ignore[no-untyped-def]
    p = tmp_path / "inv.yaml"
    p.write_text(INVENTORY)
    inv = load_inventory(p)
    return run_drill(inv, DrillRequest(cls, "only", "w", tmp_path / "ev", dry_run=dry_run),
                     progress=lambda m: None, lease_resolver=MemoryResolver())


def test_fence_allows_only_declared_prefixes_and_scratch() -> None:
    fence = Fence([Touch.s3("store", "models", "lab-mlp/")],
                  [Touch.s3("store", "safety", "drill-1/"),
                   Touch.database("pg", "drillbook_proof_*")])
    fence.check_s3("store", "models", "lab-mlp/shard-0.safetensors")
    fence.check_s3("store", "safety", "drill-1/000001/x")
    fence.check_database("pg", "drillbook_proof_ab12")
    for bucket, key in [("models", "other-model/x"), ("models", "lab-mlp2"),
                        ("safety", "drill-2/x"), ("other", "lab-mlp/x")]:
        with pytest.raises(GuardRefused, match="outside the drill's declared blast radius"):
            fence.check_s3("store", bucket, key)
    with pytest.raises(GuardRefused):
        fence.check_s3("another-store", "models", "lab-mlp/x")  # same bucket, other system
    with pytest.raises(GuardRefused):
        fence.check_database("pg", "annotations")
    with pytest.raises(GuardRefused):
        fence.check_bucket("store", "models-2")
    fence.check_bucket("store", "safety")


def test_fenced_adapters_refuse_before_any_request() -> None:
    # port 9 answers nothing: a refusal that reached the network would be an error, not a guard
    store = S3Store(S3Target("store", "http://127.0.0.1:9", "r", Secret("a"), Secret("b"), True))
    store.fence = Fence([Touch.s3("store", "models", "lab-mlp/")])
    with pytest.raises(GuardRefused):
        store.put_bytes("models", "elsewhere/x", b"x")
    with pytest.raises(GuardRefused):
        store.delete("models", "elsewhere/x", "v1")
    with pytest.raises(GuardRefused):
        store.copy_version("models", "lab-mlp/a", "v1", "models", "elsewhere/a")
    db = Database(PostgresTarget("pg", "127.0.0.1", 9, "u", Secret("p"), True))
    db.fence = Fence([Touch.database("pg", "annotations")])
    for call in (lambda: db.drop("registry"), lambda: db.create("registry", "o"),
                 lambda: db.execute("registry", "DELETE FROM t")):
        with pytest.raises(GuardRefused):
            call()


def test_overlapping_resources() -> None:
    assert overlaps(Touch.s3("s", "b", "m/"), Touch.s3("s", "b", "m/shards/"))
    assert overlaps(Touch.s3("s", "b", ""), Touch.s3("s", "b", "m/"))
    assert not overlaps(Touch.s3("s", "b", "m/"), Touch.s3("s", "b", "n/"))
    assert not overlaps(Touch.s3("s", "b", "m/"), Touch.s3("t", "b", "m/"))
    assert overlaps(Touch.database("pg", "a"), Touch.database("pg", "a"))
    assert not overlaps(Touch("n1", TouchKind.NODE, "n1"), Touch("n2", TouchKind.NODE, "n2"))


class WritesTheRegistry(Scripted):
    """A site scenario that also changes a database the inventory keeps out of drills."""

    def touches(self) -> list[Touch]:
        return [*super().touches(), Touch.database("registry-db", "mlflow")]


def test_every_declared_target_must_be_drill_safe(tmp_path: Path) -> None:
    cls = type("S", (WritesTheRegistry,), {"calls": []})
    result = run(tmp_path, cls)
    ev = result.evidence
    assert ev.verdict is Verdict.INCONCLUSIVE
    assert "registry-db" in ev.reasons[0] and "drill_safe" in ev.reasons[0]
    assert cls.calls == []  # refused before preflight: nothing ran


def test_evidence_prints_the_declared_blast_radius(tmp_path: Path) -> None:
    result = run(tmp_path, make())
    assert result.evidence.verdict is Verdict.PASS, result.evidence.reasons
    text = result.evidence.audit.scope.blast_radius
    assert "s3-prefix 'b/p/' in target 'store'" in text


class NeedsCleanup(Scripted):
    cleaned: ClassVar[list[str]] = []

    def cleanup(self) -> None:
        self.cleaned.append("cleanup")


@pytest.mark.parametrize("dry_run", [True, False])
def test_a_drill_that_stops_before_inject_cleans_up_and_never_reverts(
        tmp_path: Path, dry_run: bool) -> None:
    from harness.errors import Inconclusive

    attrs: dict[str, object] = {"calls": [], "cleaned": []}
    if not dry_run:
        attrs["preflight_error"] = Inconclusive("store unreachable")
    cls = type("S", (NeedsCleanup,), attrs)
    result = run(tmp_path, cls, dry_run=dry_run)
    assert result.evidence.verdict is Verdict.INCONCLUSIVE
    assert cls.cleaned == ["cleanup"]  # type: ignore[attr-defined]
    assert "inject" not in cls.calls and "revert" not in cls.calls
