"""How fast does drillbook restore a model from backup, next to what an operator would script?

For one lab at one model size, in the same run, it measures:

- drillbook: ``drillbook run artifact-deletion --variant purge`` (a subprocess); the RTO read from
  the drill's ``evidence.json`` (the service RTO; the verified RTO is printed beside it), and the drill process's own peak RSS (``VmHWM`` from
  ``/proc/<pid>/status``, polled: restic and the other processes it starts are not counted);
- naive: the script an operator would write: ``restic restore`` of the newest snapshot to a
  scratch directory, then each file uploaded with boto3 (``upload_file``, 8 threads, 16 MiB
  parts) to a scratch bucket, then ``sha256sum`` of the files;
- lower: ``restic restore`` + ``sha256sum`` alone (no upload): what restic and the disk allow;
- cpu: the CPU seconds (user + system, every process of the lab and every process the bench
  started) of each stage the naive script and the drill share, measured one at a time: the
  restic restore, the upload into the store (boto3's, then the drill's own path over the same
  files), ``sha256sum``, and the node's reload of the model from the store. On a machine whose
  cores those stages saturate, their CPU seconds divided by the number of cores is the floor no
  overlap can beat.

    .venv/bin/python bench/restore.py --size 1GiB [--dir DIR | --reuse DIR] [--keep] [--core-only]

``--reuse DIR`` uses the lab already running in DIR as it is (its model size is what it was made
with; only the purge drill's own parts must be up) and leaves it running; otherwise a lab is brought up in ``--dir`` (default: a temporary directory) at
``--size`` and destroyed afterwards unless ``--keep``. The last line is exactly::

    restore: size=<MiB> drillbook=<s> naive=<s> lower=<s> ratio_naive=<x> peak_rss_mb=<n>

Timings on a shared machine are noisy: compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.cli import parse_size
from harness.targets.s3 import S3Store
from lab.stack import MODEL_NAME, Lab

MiB = 1024 * 1024
BENCH_BUCKET = "drillbook-bench"
REPO = Path(__file__).resolve().parent.parent


def restic_env(lab: Lab) -> dict[str, str]:
    s = lab.state
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RESTIC_", "AWS_"))}
    env.update(RESTIC_REPOSITORY=lab.restic_repository, RESTIC_PASSWORD=s.restic_password,
               AWS_ACCESS_KEY_ID=s.backup_key, AWS_SECRET_ACCESS_KEY=s.backup_secret,
               RESTIC_CACHE_DIR=str(lab.root / "restic-cache"))
    return env


class Meter:
    """CPU seconds spent by the lab's processes (every process whose command line names the
    lab's directory) and by this process and its waited-for children, between start and stop."""

    def __init__(self, lab: Lab) -> None:
        self.root = str(lab.root).encode()
        self.tick = os.sysconf("SC_CLK_TCK")
        self.spent: dict[str, float] = {}

    def _now(self) -> float:
        total = 0.0
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                if self.root not in (d / "cmdline").read_bytes():
                    continue
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            total += (int(fields[11]) + int(fields[12])) / self.tick
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
            r = resource.getrusage(who)
            total += r.ru_utime + r.ru_stime
        return total

    def measure(self, name: str, fn: Callable[[], Any]) -> Any:
        begin = self._now()
        out = fn()
        self.spent[name] = self.spent.get(name, 0.0) + self._now() - begin
        return out


def restic_restore(lab: Lab, target: Path) -> Path:
    snap = lab.restic().snapshots(path=str(lab.stage_dir))[-1]
    subprocess.run(["restic", "--no-lock", "restore", snap.id, "--target", str(target),
                    "--include", str(lab.stage_dir)], env=restic_env(lab), check=True,
                   stdout=subprocess.DEVNULL)
    return target / str(lab.stage_dir).lstrip("/")


def sha256sum(directory: Path) -> None:
    files = sorted(str(p) for p in directory.rglob("*") if p.is_file())
    subprocess.run(["sha256sum", *files], check=True, stdout=subprocess.DEVNULL)


def naive(lab: Lab, scratch: Path, meter: Meter | None = None) -> float:
    """restic restore + boto3 upload_file (8 threads, 16 MiB parts) + sha256sum, one after the
    other, as a runbook script would do them."""
    import boto3
    from boto3.s3.transfer import TransferConfig
    s = lab.state
    client: Any = boto3.client("s3", endpoint_url=lab.ceph.endpoint, region_name="default",
                               aws_access_key_id=s.operator_key,
                               aws_secret_access_key=s.operator_secret)
    S3Store(lab.operator_target()).ensure_bucket(BENCH_BUCKET, versioned=False)
    config = TransferConfig(multipart_chunksize=16 * MiB, max_concurrency=8)
    meter = meter or Meter(lab)

    def upload(root: Path) -> None:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            client.upload_file(str(path), BENCH_BUCKET, f"naive/{path.relative_to(root)}",
                               Config=config)

    t = time.monotonic()
    root = meter.measure("restic restore", lambda: restic_restore(lab, scratch))
    meter.measure("upload (boto3)", lambda: upload(root))
    meter.measure("sha256sum", lambda: sha256sum(root))
    took = time.monotonic() - t
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        client.delete_object(Bucket=BENCH_BUCKET, Key=f"naive/{path.relative_to(root)}")
    return took


def drillbook_upload(lab: Lab, root: Path, meter: Meter) -> None:
    """The drill's own upload path (``S3Store.upload_hashed``: hashed 16 MiB parts, 5 on the
    wire, 4 files at once) over the files the naive script restored: its CPU seconds, for the
    floor (boto3's ``upload_file`` costs more)."""
    from harness.restore import RestoreTuning
    from harness.targets.s3 import PartBudget
    store = S3Store(lab.operator_target())
    tuning = RestoreTuning()
    files = sorted(p for p in root.rglob("*") if p.is_file())

    def run() -> None:
        budget = PartBudget(tuning.parts)
        with concurrent.futures.ThreadPoolExecutor(tuning.upload_threads) as parts, \
                concurrent.futures.ThreadPoolExecutor(tuning.files) as senders:
            def send(path: Path) -> None:
                with path.open("rb") as fh:
                    store.upload_hashed(BENCH_BUCKET, f"drillbook/{path.relative_to(root)}", fh,
                                        parts=parts, budget=budget, part_size=tuning.part_size)
            list(senders.map(send, files))

    t = time.monotonic()
    meter.measure("upload (drillbook)", run)
    print(f"drillbook's upload path alone: {time.monotonic() - t:.2f} s", flush=True)
    for path in files:
        store.delete(BENCH_BUCKET, f"drillbook/{path.relative_to(root)}")


def lower(lab: Lab, scratch: Path) -> float:
    t = time.monotonic()
    sha256sum(restic_restore(lab, scratch))
    return time.monotonic() - t


def node_reload(lab: Lab) -> float:
    """The inference node reloads the model from the store, through the adapter the drill's
    redeploy uses (load, then wait until ready); seconds until it answers ready."""
    from harness.inventory import InferenceTarget
    from harness.targets.inference import InferenceEndpoint
    endpoint = InferenceEndpoint(InferenceTarget("inference", lab.node_url, MODEL_NAME, True))
    t = time.monotonic()
    ok, message = endpoint.load(timeout_s=600)
    ready = endpoint.wait_ready(600)
    if not ok or not ready.ready:
        raise SystemExit(f"the node did not reload: {message}; ready: HTTP {ready.status} "
                         f"{ready.detail}")
    return time.monotonic() - t


def _peak_rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def drill(lab: Lab, evidence: Path) -> tuple[float, float, dict[str, Any]]:
    """(RTO s, peak RSS MB of the drillbook process, the evidence document)."""
    argv = [str(REPO / ".venv" / "bin" / "drillbook"), "run", "artifact-deletion", "--variant",
            "purge", "--inventory", str(lab.inventory_path), "--evidence-dir", str(evidence),
            "--quiet"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = [0]

    def poll() -> None:
        while proc.poll() is None:
            got = _peak_rss_kib(proc.pid)
            if got is not None:
                peak[0] = max(peak[0], got)
            time.sleep(0.05)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    watcher.join()
    folders = sorted(evidence.glob("*/evidence.json"), key=lambda p: p.stat().st_mtime)
    if not folders:
        raise SystemExit(f"the drill wrote no evidence:\n{out.decode(errors='replace')}")
    doc: dict[str, Any] = json.loads(folders[-1].read_text())
    rto = doc.get("rto", {}).get("measured_s")
    if doc.get("verdict") != "PASS" or rto is None:
        raise SystemExit(f"the drill did not PASS ({doc.get('verdict')}): {doc.get('reasons')}")
    return float(rto), peak[0] / 1024, doc


def where_the_time_goes(doc: dict[str, Any], journal: Path) -> list[str]:
    """The RTO breakdown, each step of every phase, and the pipeline's own events."""
    lines = [f"  {k:32s} {v:7.2f} s" for k, v in doc.get("rto_breakdown_s", {}).items()]
    records = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    phases: dict[str, float] = {}
    for r in records:
        if r.get("type") == "step" and r.get("phase") not in ("runbook", "verify"):
            phases[f"{r['phase']}:{r['name']}"] = float(r["duration_s"])
    marks = [(r["event"], float(r["mono"])) for r in records
             if r.get("type") == "event" and str(r.get("event", "")).startswith("phase.")]
    for (name, t), (_, t_next) in itertools.pairwise(marks):
        phases.setdefault(name.removeprefix("phase."), t_next - t)
    lines += [f"  (outside RTO) {k:19s} {v:7.2f} s" for k, v in phases.items()]
    for r in records:
        if r.get("event") in ("pull.transferred", "restorable.proven", "capacity.checked"):
            lines.append(f"  {r['event']}: {json.dumps(r.get('detail', {}), sort_keys=True)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="1GiB", help="model size for a new lab (e.g. 256MiB)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--reuse", type=Path, help="use the lab already in this directory")
    where.add_argument("--dir", type=Path, help="bring a new lab up here")
    ap.add_argument("--keep", action="store_true", help="leave a new lab running afterwards")
    ap.add_argument("--core-only", action="store_true",
                    help="bring up only what a purge drill needs (store, restic, one node): no "
                         "backup/replication jobs, databases, registry or fleet")
    args = ap.parse_args(argv)

    made = args.reuse is None
    root = args.reuse or args.dir or Path(tempfile.mkdtemp(prefix="drillbook-bench-lab-"))
    lab = Lab(root, model_size=parse_size(args.size))
    if args.core_only:
        lab.components = []
    try:
        if made:
            t = time.monotonic()
            # each step stamped with the time since start: where lab up spends its time
            lab.up(progress=lambda m: print(f"[{time.monotonic() - t:6.1f}] {m}", flush=True))
            print(f"lab up at {lab.state.model_size // MiB} MiB in {time.monotonic() - t:.1f} s")
        elif lab.node_readiness() != "ready":
            raise SystemExit(f"the lab in {root} is not serving (node: {lab.node_readiness()}); "
                             f"run `drillbook lab --dir {root} up` first")
        size_mib = lab.state.model_size // MiB
        with tempfile.TemporaryDirectory(prefix="bench-", dir=root) as tmp:
            scratch = Path(tmp)
            meter = Meter(lab)
            t_naive = naive(lab, scratch / "naive", meter)
            print(f"naive (restic restore + boto3 8x16 MiB + sha256sum): {t_naive:.2f} s",
                  flush=True)
            drillbook_upload(lab, next(p.parent for p in (scratch / "naive").rglob("config.json")),
                             meter)
            t_lower = lower(lab, scratch / "lower")
            print(f"lower bound (restic restore + sha256sum): {t_lower:.2f} s", flush=True)
            shutil.rmtree(scratch / "naive", ignore_errors=True)
            shutil.rmtree(scratch / "lower", ignore_errors=True)
            t_reload = meter.measure("node reload", lambda: node_reload(lab))
            print(f"node reload alone: {t_reload:.2f} s", flush=True)
            rto, rss, doc = drill(lab, scratch / "evidence")
            journal = max((scratch / "evidence").glob("*/journal.jsonl"),
                          key=lambda p: p.stat().st_mtime)
            journal_text = journal.read_text()
        journal = root / "bench-last-journal.jsonl"
        journal.write_text(journal_text)
        verified = (doc.get("rto_verified") or {}).get("measured_s")
        print(f"drillbook purge RTO: {rto:.2f} s (verdict {doc['verdict']}"
              + (f"; verified RTO {float(verified):.2f} s" if verified is not None else "")
              + "); where it went:")
        print("\n".join(where_the_time_goes(doc, journal)))
        cores = os.cpu_count() or 1
        print("CPU seconds of each stage, every process counted: "
              + ", ".join(f"{k} {v:.2f}" for k, v in meter.spent.items()))
        floor = sum(meter.spent[k] for k in ("restic restore", "upload (drillbook)",
                                             "node reload"))
        naive_cpu = sum(meter.spent[k] for k in ("restic restore", "upload (boto3)", "sha256sum"))
        print(f"  the drill's restore does restic restore + its upload + node reload at the "
              f"least: {floor:.2f} CPU-s, so no overlap brings it under {floor / cores:.2f} s "
              f"on {cores} CPUs; the naive script spent {naive_cpu:.2f} CPU-s")
        print(f"load average (1, 5, 15 min) at the end: "
              f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
        print(f"restore: size={size_mib} drillbook={rto:.2f} naive={t_naive:.2f} "
              f"lower={t_lower:.2f} ratio_naive={rto / t_naive:.2f} peak_rss_mb={rss:.0f}")
    finally:
        if made and not args.keep:
            lab.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
