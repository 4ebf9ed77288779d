"""Drill leases without a lab: the store contract, exclusion, overlap, expiry, orphans, races,
and the runner refusing a held target before it touches anything."""

from __future__ import annotations

import subprocess
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from harness import lease
from harness.blast import Touch
from harness.inventory import load_inventory
from harness.lease import (
    DrillLeases,
    LeaseHeld,
    LeaseOrphaned,
    LeaseRecord,
    LeaseState,
    MemoryResolver,
    list_leases,
)
from harness.lease_stores import LeaseStore, MemoryLeaseStore
from harness.model import Verdict, utc_now
from harness.runner import DrillRequest, run_drill
from harness.scenario import RunbookStep, Scenario

WEIGHTS = Touch.s3("store", "models", "lab-mlp/")


def check_store_contract(store: LeaseStore, key: str) -> None:
    """What every lease store must do; run against the fake here and the lab's stores in
    tests/test_lease_lab.py."""
    assert store.get(key) is None
    tag = store.create(key, b"one")
    assert tag is not None
    assert store.create(key, b"two") is None, "a second create must fail"
    assert store.get(key) == (b"one", tag)
    assert key in store.list_keys()
    assert store.replace(key, b"x", "999999") is None, "a stale tag must not overwrite"
    tag2 = store.replace(key, b"three", tag)
    assert tag2 is not None and tag2 != tag
    assert store.replace(key, b"four", tag) is None, "the old tag is stale now"
    assert store.get(key) == (b"three", tag2)
    assert not store.remove(key, tag), "removing with a stale tag must fail"
    assert store.remove(key, tag2)
    assert store.get(key) is None
    assert key not in store.list_keys()


def check_create_race(make_store: Any, key: str, threads: int = 8) -> None:
    """Many processes create the same lease at once: exactly one wins."""
    for _ in range(5):
        wins: list[int] = []
        barrier = threading.Barrier(threads)

        def go(i: int, barrier: threading.Barrier = barrier, wins: list[int] = wins) -> None:
            store = make_store()
            barrier.wait()
            if store.create(key, str(i).encode()) is not None:
                wins.append(i)

        ts = [threading.Thread(target=go, args=(i,)) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert len(wins) == 1, wins
        store = make_store()
        got = store.get(key)
        assert got is not None and got[0] == str(wins[0]).encode()
        assert store.remove(key, got[1])


def leases_for(resolver: lease.Resolver, drill_id: str, **kw: Any) -> DrillLeases:
    return DrillLeases(resolver, drill_id=drill_id, scenario="artifact-deletion",
                       variant="purge", asset="w", evidence_dir=f"/tmp/{drill_id}", **kw)


def test_memory_store_contract() -> None:
    check_store_contract(MemoryLeaseStore(), "store/s3-prefix/models/lab-mlp/")


def test_memory_store_create_race() -> None:
    shared = MemoryLeaseStore()
    check_create_race(lambda: shared, "k")


def test_second_drill_is_refused_naming_the_holder() -> None:
    resolver = MemoryResolver()
    a = leases_for(resolver, "drill-a")
    a.acquire([WEIGHTS])
    try:
        b = leases_for(resolver, "drill-b")
        with pytest.raises(LeaseHeld) as info:
            b.acquire([WEIGHTS])
        msg = str(info.value)
        assert "held by drill drill-a since" in msg and f"pid {a.held[0].record.pid}" in msg
        assert lease.this_host() in msg and "nothing was touched" in msg
        assert b.held == [] and len(resolver.store.list_keys()) == 1
    finally:
        a.release()
    assert resolver.store.list_keys() == []
    b = leases_for(resolver, "drill-b")
    b.acquire([WEIGHTS])  # free again
    b.release()


def test_overlapping_resources_exclude_each_other() -> None:
    resolver = MemoryResolver()
    whole = leases_for(resolver, "whole-bucket")
    whole.acquire([Touch.s3("store", "models", "")])
    try:
        inner = leases_for(resolver, "one-prefix")
        with pytest.raises(LeaseHeld, match="whole-bucket"):
            inner.acquire([Touch.s3("store", "models", "lab-mlp/"),
                           Touch.s3("store", "other", "x/")])
        assert resolver.store.list_keys() == ["store/s3-prefix/models/"], \
            "a refused drill gives back every lease it took"
        apart = leases_for(resolver, "other-bucket")
        apart.acquire([Touch.s3("store", "other", "x/")])  # no overlap: allowed
        apart.release()
    finally:
        whole.release()


def test_expired_lease_is_an_orphan_and_refuses_with_recover() -> None:
    clock = [utc_now()]
    resolver = MemoryResolver()
    a = leases_for(resolver, "dead", ttl_s=30, now=lambda: clock[0])
    a.acquire([WEIGHTS])
    a.note_phase("inject")
    a.stop_renewing()  # the holder stops renewing: as if it had been killed
    clock[0] += timedelta(seconds=31)
    found = list_leases([resolver.store], now=clock[0])
    assert [f.state for f in found] == [LeaseState.ORPHAN]
    assert "expired" in found[0].why and found[0].record.phase == "inject"
    b = leases_for(resolver, "next", now=lambda: clock[0])
    with pytest.raises(LeaseOrphaned) as info:
        b.acquire([WEIGHTS])
    assert "drillbook recover" in str(info.value) and "died at inject" in str(info.value)
    # not expired yet, seen from a moment before: held
    assert list_leases([resolver.store], now=clock[0] - timedelta(seconds=5))[0].state \
        is LeaseState.HELD


def test_lease_of_a_dead_process_on_this_host_is_an_orphan_at_once() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    store = MemoryLeaseStore()
    now = utc_now()
    rec = LeaseRecord(WEIGHTS, "gone", "s", "v", "w", lease.this_host(), proc.pid, now, now,
                      now + timedelta(hours=1), "/tmp/x", "runbook", "t")
    store.create(WEIGHTS.resource, rec.to_bytes())
    [found] = list_leases([store])
    assert found.state is LeaseState.ORPHAN and str(proc.pid) in found.why
    other_host = LeaseRecord(WEIGHTS, "elsewhere", "s", "v", "w", "another-host", proc.pid, now,
                             now, now + timedelta(hours=1), "/tmp/x", "runbook", "t")
    assert lease.classify(other_host, store, now)[0] is LeaseState.HELD


def test_two_threads_race_for_the_same_resource_one_wins() -> None:
    for _ in range(20):
        resolver = MemoryResolver()
        barrier = threading.Barrier(6)
        won: list[DrillLeases] = []
        refused: list[str] = []

        def go(i: int, resolver: MemoryResolver = resolver, barrier: threading.Barrier = barrier,
               won: list[DrillLeases] = won, refused: list[str] = refused) -> None:
            mine = leases_for(resolver, f"racer-{i}")
            # half of them ask for the whole bucket, half for the prefix inside it
            touch = WEIGHTS if i % 2 else Touch.s3("store", "models", "")
            barrier.wait()
            try:
                mine.acquire([touch])
                won.append(mine)
            except LeaseHeld as exc:
                refused.append(str(exc))

        ts = [threading.Thread(target=go, args=(i,)) for i in range(6)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        assert len(won) <= 1, "two drills must never both hold overlapping resources"
        assert len(won) + len(refused) == 6
        for w in won:
            w.release()


def test_renewal_keeps_the_lease_alive_and_records_progress() -> None:
    resolver = MemoryResolver()
    a = leases_for(resolver, "renewing", ttl_s=0.3)
    a.acquire([WEIGHTS])
    try:
        first = a.held[0].record.expires
        lease.record_safety_copy("renewing", "s3-versions", "s3://safety/renewing/",
                                 bucket="models", prefix="lab-mlp/")
        lease.note_phase("renewing", "inject")
        time.sleep(0.8)  # more than two lifetimes: only renewal keeps it
        [found] = list_leases([resolver.store])
        assert found.state is LeaseState.HELD and found.record.expires > first
        assert found.record.phase == "inject"
        assert [(s.kind, s.location, s.detail["prefix"]) for s in found.record.safety_copies] == \
            [("s3-versions", "s3://safety/renewing/", "lab-mlp/")]
    finally:
        a.release()
    assert lease.active("renewing") is None


def test_kept_as_orphan_after_a_failed_revert_then_taken_over() -> None:
    resolver = MemoryResolver()
    a = leases_for(resolver, "broken")
    a.acquire([WEIGHTS])
    a.keep_as_orphan("revert-failed")
    [found] = list_leases([resolver.store])
    assert found.record.phase == "revert-failed"
    taken = lease.take_over(found)
    assert taken is not None and taken.record.orphaned_from == {
        "host": lease.this_host(), "pid": found.record.pid, "phase": "revert-failed"}
    assert lease.take_over(found) is None, "a second recover must not take it over too"
    lease.mark(taken, "recover-failed")
    [again] = list_leases([resolver.store])
    assert again.record.phase == "recover-failed"


def test_lease_record_round_trips() -> None:
    now = utc_now()
    rec = LeaseRecord(Touch.database("pg", "annotations"), "d", "s", "v", "a", "h", 1, now, now,
                      now, "/e", "baseline", "tok",
                      (lease.SafetyRecord("pg-dump", "/e/safety.dump", {"tables": {}}),))
    assert LeaseRecord.from_bytes(rec.to_bytes()) == rec


# -- the runner --------------------------------------------------------------------------------

INVENTORY = """\
version: 1
site: unit
targets:
  store: {kind: s3, endpoint: "http://127.0.0.1:9", access_key: a, secret_key: b, drill_safe: true}
assets:
  - {id: w, tier: 1, kind: model-weights, store: store, bucket: models, prefix: lab-mlp/}
objectives:
  tiers: {1: {rto_s: 60, rpo_s: 3600}}
probe: {interval_s: 0.01, detect_timeout_s: 0.2}
"""


class Touchy(Scenario):
    name: ClassVar[str] = "touchy"
    summary: ClassVar[str] = "records which hooks ran"
    variants: ClassVar[tuple[str, ...]] = ("only",)
    asset_kinds: ClassVar[tuple[str, ...]] = ("model-weights",)
    calls: ClassVar[list[str]] = []
    fail_revert: ClassVar[bool] = False

    def preflight(self) -> None:
        self.calls.append("preflight")

    def baseline(self) -> None:
        self.calls.append("baseline")

    def inject(self) -> None:
        self.calls.append("inject")

    def detect(self) -> bool:
        return True

    def runbook(self) -> list[RunbookStep]:
        return []

    def verify(self) -> None:
        self.calls.append("verify")

    def revert(self) -> None:
        self.calls.append("revert")
        if self.fail_revert:
            raise RuntimeError("revert broke")


def test_runner_refuses_a_held_target_and_touches_nothing(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text(INVENTORY)
    inv = load_inventory(tmp_path / "inv.yaml")
    resolver = MemoryResolver()
    holder = leases_for(resolver, "other-drill")
    holder.acquire([WEIGHTS])
    Touchy.calls = []
    try:
        result = run_drill(inv, DrillRequest(Touchy, "only", "w", tmp_path / "ev"),
                           progress=lambda m: None, lease_resolver=resolver)
    finally:
        holder.release()
    assert result.evidence.verdict is Verdict.INCONCLUSIVE
    assert Touchy.calls == []
    assert any("held by drill other-drill" in r for r in result.evidence.reasons)


def test_runner_releases_after_a_drill_and_keeps_after_a_failed_revert(tmp_path: Path) -> None:
    (tmp_path / "inv.yaml").write_text(INVENTORY)
    inv = load_inventory(tmp_path / "inv.yaml")
    resolver = MemoryResolver()
    Touchy.calls, Touchy.fail_revert = [], False
    run_drill(inv, DrillRequest(Touchy, "only", "w", tmp_path / "ev"), progress=lambda m: None,
              lease_resolver=resolver)
    assert "inject" in Touchy.calls and resolver.store.list_keys() == []
    Touchy.fail_revert = True
    try:
        run_drill(inv, DrillRequest(Touchy, "only", "w", tmp_path / "ev"),
                  progress=lambda m: None, lease_resolver=resolver)
    finally:
        Touchy.fail_revert = False
    [kept] = list_leases([resolver.store])
    assert kept.record.phase == "revert-failed"
    assert isinstance(kept.record.started, datetime)
