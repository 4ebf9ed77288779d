"""Site-safety on the lab, through the `drillbook` command as operators run it: two overlapping
drills from two evidence directories, and drills killed with SIGKILL after inject, then
`drillbook recover`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.blast import Touch
from harness.lease import list_leases
from harness.lease_stores import PostgresLeaseStore, S3LeaseStore
from harness.recover import BROKEN_FROM
from harness.targets.database import TableState
from harness.targets.s3 import S3Store
from lab.postgres import ANNOTATIONS_DB, PostgresServer
from lab.stack import MODEL_NAME, MODELS_BUCKET, SAFETY_BUCKET, Lab

pytestmark = pytest.mark.lab

PREFIX = f"{MODEL_NAME}/"
Fingerprint = list[tuple[str, str, int, bool]]


def cli(lab: Lab, *args: str) -> list[str]:
    return [sys.executable, "-m", "harness.cli", *args]


def drillbook(lab: Lab, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """One `drillbook` command to completion; the caller checks its exit code."""
    return subprocess.run(cli(lab, *args), env=env(lab), capture_output=True, text=True,
                          timeout=timeout, check=False)


def env(lab: Lab) -> dict[str, str]:
    return dict(os.environ, DRILLBOOK_INVENTORY=str(lab.inventory_path))


def store(lab: Lab) -> S3Store:
    return S3Store(lab.operator_target())


def versions(lab: Lab) -> Fingerprint:
    """Every version under the model prefix, newest first per key: content, size, order."""
    return [(v.key, v.etag, v.size, v.is_delete_marker)
            for v in store(lab).list_versions(MODELS_BUCKET, PREFIX)]


def tables(lab: Lab) -> dict[str, TableState]:
    return PostgresServer(lab.root).db().table_states(ANNOTATIONS_DB)


def leases(lab: Lab) -> list[str]:
    found = list_leases([S3LeaseStore(store(lab), SAFETY_BUCKET),
                         PostgresLeaseStore(PostgresServer(lab.root).db())])
    return [f.record.drill_id for f in found]


def wait_for_event(root: Path, event: str, proc: subprocess.Popen[str],
                   timeout_s: float = 240) -> Path:
    """The drill folder under root once its journal records ``event``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for journal in root.glob("*/journal.jsonl"):
            if f'"event": "{event}"' in journal.read_text(encoding="utf-8"):
                return journal.parent
        assert proc.poll() is None, f"the drill exited before {event}: {proc.communicate()}"
        time.sleep(0.05)
    raise AssertionError(f"no {event} within {timeout_s} s")


def start(lab: Lab, evidence: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(cli(lab, "run", *args, "--evidence-dir", str(evidence)),
                            env=env(lab), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_overlapping_drill_from_another_evidence_dir_is_refused(lab: Lab,
                                                                tmp_path: Path) -> None:
    before = versions(lab)
    first = start(lab, tmp_path / "ev-a", "artifact-deletion", "--variant", "purge")
    folder = wait_for_event(tmp_path / "ev-a", "phase.preflight", first)
    t0 = time.monotonic()
    second = drillbook(lab, "run", "artifact-deletion", "--variant", "purge",
                       "--evidence-dir", str(tmp_path / "ev-b"))
    refused_in = time.monotonic() - t0
    out_a, _ = first.communicate(timeout=600)
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"held by drill {folder.name} since" in second.stdout
    assert f"pid {first.pid})" in second.stdout
    [b] = (tmp_path / "ev-b").glob("*/journal.jsonl")
    journal = b.read_text()
    assert "phase.preflight" not in journal and "safety.copy.taken" not in journal, \
        "the refused drill must touch nothing"
    assert first.returncode == 0, out_a
    assert versions(lab) == before, "every version of the weights is as it was"
    assert leases(lab) == []
    print(f"second drill refused in {refused_in:.1f} s")


def test_sigkill_after_inject_then_recover_restores_the_weights(lab: Lab,
                                                                tmp_path: Path) -> None:
    before = versions(lab)
    evidence = tmp_path / "ev"
    proc = start(lab, evidence, "artifact-deletion", "--variant", "purge")
    folder = wait_for_event(evidence, "fault.inject.completed", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert versions(lab) != before and leases(lab) == [folder.name]
    status = drillbook(lab, "lab", "--dir", str(lab.root), "status")
    assert status.returncode == 1 and "ORPHAN" in status.stdout and folder.name in status.stdout
    refused = drillbook(lab, "run", "artifact-deletion", "--variant", "soft",
                        "--evidence-dir", str(tmp_path / "ev2"))
    assert refused.returncode == 2 and "drillbook recover" in refused.stdout

    t0 = time.monotonic()
    rec = drillbook(lab, "recover", "--evidence-dir", str(evidence))
    took = time.monotonic() - t0
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert "verified as found" in rec.stdout
    assert versions(lab) == before, "every version back, same content, size and order"
    assert leases(lab) == []
    assert store(lab).list_keys(SAFETY_BUCKET, folder.name) == [], "safety copy discarded"
    doc = json.loads((folder / "evidence.json").read_text())
    assert doc["verdict"] == "INCONCLUSIVE"
    [died] = [r for r in doc["reasons"] if r.startswith("harness died at ")]
    assert died.split()[3] in BROKEN_FROM and "verified it as found" in died, died
    assert doc["sections"]["recovery"]["verified_as_found"] is True
    assert (folder / "SHA256SUMS").exists()
    again = drillbook(lab, "recover", "--evidence-dir", str(evidence))
    assert again.returncode == 0 and "no orphaned drills" in again.stdout
    print(f"recover took {took:.1f} s")


def test_sigkill_after_inject_then_recover_restores_the_annotations(lab: Lab,
                                                                    tmp_path: Path) -> None:
    before = tables(lab)
    evidence = tmp_path / "ev"
    proc = start(lab, evidence, "annotation-db-loss")
    folder = wait_for_event(evidence, "fault.inject.completed", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    db = PostgresServer(lab.root).db()
    assert not db.exists(ANNOTATIONS_DB)
    found = list_leases([PostgresLeaseStore(db)])
    assert [f.record.touch for f in found] == [Touch.database("postgres", ANNOTATIONS_DB)]
    [dump] = [s for s in found[0].record.safety_copies if s.kind == "pg-dump"]
    assert Path(dump.location).is_file(), "the lease says where the safety dump is"

    rec = drillbook(lab, "recover", "--evidence-dir", str(evidence))
    assert rec.returncode == 0, rec.stdout + rec.stderr
    assert tables(lab) == before, "every table back with the same rows and checksums"
    assert leases(lab) == []
    assert not Path(dump.location).exists()
    doc = json.loads((folder / "evidence.json").read_text())
    assert doc["verdict"] == "INCONCLUSIVE"
    [died] = [r for r in doc["reasons"] if r.startswith("harness died at ")]
    assert died.split()[3] in BROKEN_FROM and "verified it as found" in died, died
    assert any("database annotations: restored from" in r
               for r in doc["sections"]["recovery"]["restored"])
