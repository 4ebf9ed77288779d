"""A site made of fakes for the object scenarios: an inventory, a fake store holding four assets
(weights, a LoRA adapter, a pipeline config, a pinned dataset version) with their manifests and
an older version of each, a fake restic repository with a snapshot of each made a minute before
the drill, and fake inference nodes serving the weights and the adapter. No lab, no network, no
subprocess; the clock is a ManualClock, so every time in the evidence is exact."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from harness.fakes.inference import FakeEndpoint
from harness.fakes.restic import FakeRepo
from harness.fakes.store import FakeStore
from harness.inventory import Inventory, load_inventory
from harness.journal import ManualClock
from harness.lease import MemoryResolver
from harness.runner import DrillRequest, DrillResult, StepOverride, run_drill
from harness.scenario import Scenario
from harness.targets.s3 import StoreError

START = datetime(2026, 11, 29, 9, 0, tzinfo=UTC)
#: seconds between the backup snapshot and the drill: the purge variants' RPO
BACKUP_AGE_S = 60.0
LOAD_S = 2.0
BUCKET = "models"
DATASETS = "datasets"
SAFETY = "drillbook-safety"

INVENTORY = """\
version: 1
site: unit-objects
targets:
  store: {kind: s3, endpoint: "http://127.0.0.1:9", access_key: a, secret_key: b, drill_safe: true}
  backups: {kind: restic, repository: "s3:http://127.0.0.1:9/backups", password: pw,
            drill_safe: false}
  inference: {kind: inference, url: "http://127.0.0.1:9/mlp", model: mlp, drill_safe: true}
  inference-adapter: {kind: inference, url: "http://127.0.0.1:9/lora", model: mlp+lora,
                      drill_safe: true}
assets:
  - {id: weights, tier: 1, kind: model-weights, store: store, bucket: models, prefix: mlp/,
     manifest: manifest.json, backup: backups, backup_path: /stage/models, served_by: inference,
     golden: golden-mlp.json}
  - {id: adapter, tier: 1, kind: lora-adapter, store: store, bucket: models,
     prefix: adapters/lora/, backup: backups, backup_path: /backup/adapters,
     served_by: inference-adapter, golden: golden-lora.json}
  - {id: config, tier: 2, kind: pipeline-config, store: store, bucket: models,
     prefix: pipelines/rag/, backup: backups, backup_path: /backup/pipelines}
  - {id: dataset, tier: 1, kind: dataset, store: store, bucket: datasets, prefix: ds/,
     manifest: versions/v0002.json, backup: backups, backup_path: /backup/datasets}
objectives:
  tiers: {1: {rto_s: 300, rpo_s: 3600}, 2: {rto_s: 3600, rpo_s: 86400}}
guards: {safety_bucket: drillbook-safety}
probe: {interval_s: 0.5, detect_timeout_s: 5, step_timeout_s: 30}
"""


def safetensors(seed: int, floats: int = 64) -> bytes:
    """A small valid safetensors file: header, then float32 values from ``seed``."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [floats],
                               "data_offsets": [0, 4 * floats]}}).encode()
    values = struct.pack(f"<{floats}f", *[(seed * 31 + i) / 97.0 for i in range(floats)])
    return struct.pack("<Q", len(header)) + header + values


def manifest(files: dict[str, bytes], model: str) -> bytes:
    return json.dumps({"format": "drillbook-manifest/1", "model": model,
                       "created_utc": START.isoformat(),
                       "files": [{"path": p, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()}
                                 for p, d in sorted(files.items())]}, indent=1).encode()


def weights(gen: int) -> dict[str, bytes]:
    return {"model-00001-of-00002.safetensors": safetensors(10 * gen + 1),
            "model-00002-of-00002.safetensors": safetensors(10 * gen + 2),
            "config.json": json.dumps({"gen": gen, "layers": 2}).encode()}


def adapter(gen: int) -> dict[str, bytes]:
    return {"adapter_model.safetensors": safetensors(100 + gen),
            "adapter_config.json": json.dumps({"r": 8, "gen": gen}).encode()}


def pipeline(gen: int) -> dict[str, bytes]:
    return {"pipeline.yaml": b"prompts:\n  answer: prompts/answer.j2\n  system: prompts/system.j2\n"
                             + f"# generation {gen}\n".encode(),
            "prompts/answer.j2": f"Answer using {{{{ context }}}} (v{gen})".encode(),
            "prompts/system.j2": f"You are careful. (v{gen})".encode()}


def dataset(gen: int) -> dict[str, bytes]:
    return {f"train/part-{i}.jsonl": f'{{"row": {i}, "gen": {min(gen, i)}}}\n'.encode()
            for i in range(3)}


@dataclass
class Site:
    root: Path
    evidence_root: Path
    inventory: Inventory
    clock: ManualClock
    store: FakeStore
    repo: FakeRepo
    endpoints: dict[str, FakeEndpoint]
    #: asset id -> key -> current bytes, as published (the known-good state)
    published: dict[str, dict[str, bytes]] = field(default_factory=dict)

    @property
    def adapters(self) -> dict[str, object]:
        return {"store": self.store, "backups": self.repo, **self.endpoints}

    def state(self) -> list[tuple[str, str, str, int, bool]]:
        """Every version in the asset buckets, in order: what "as found" means."""
        return [(b, v.key, v.etag, v.size, v.is_delete_marker) for b in (BUCKET, DATASETS)
                for v in self.store.list_versions(b, "")]

    def safety_left(self) -> list[str]:
        """What is left in the safety bucket (nothing, also when it was never made)."""
        try:
            return self.store.list_keys(SAFETY, "")
        except StoreError:
            return []

    def drill(self, scenario: type[Scenario], variant: str, asset: str,
              overrides: dict[str, StepOverride] | None = None) -> DrillResult:
        """Run one drill on the fakes. It runs off the main thread, where the runner installs no
        signal handlers (their watcher would cost tens of milliseconds a phase); the evidence
        goes to ``evidence_root`` (a tmpfs in the unit tests: the journal fsyncs every line)."""
        req = DrillRequest(scenario, variant, asset, self.evidence_root)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            return pool.submit(run_drill, self.inventory, req, adapters=self.adapters,
                               clock=self.clock, overrides=overrides,
                               lease_resolver=MemoryResolver(), progress=lambda m: None).result()


def build_site(root: Path, evidence_root: Path, *, versioned: bool = True, snapshot_age_s: float | None = BACKUP_AGE_S
               ) -> Site:
    """The site a minute after its last backup. ``snapshot_age_s`` None: nothing backed up;
    negative: the only snapshots are dated after the drill starts (a fast backup clock)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "golden-mlp.json").write_text(json.dumps({"inputs": [[0.5, 1.0], [2.0, -1.0]]}))
    (root / "golden-lora.json").write_text(json.dumps({"inputs": [[1.0, 1.0, 1.0]]}))
    (root / "inventory.yaml").write_text(INVENTORY)
    inventory = load_inventory(root / "inventory.yaml")
    clock = ManualClock(START)
    store = FakeStore(inventory.s3("store"), now=clock.utc)
    repo = FakeRepo(inventory.restic("backups"))
    for bucket in (BUCKET, DATASETS):
        store.create_bucket(bucket, versioned=versioned)
    site = Site(root, evidence_root, inventory, clock, store, repo, {})
    layouts = {"weights": weights, "adapter": adapter, "config": pipeline}
    for gen in (1, 2):  # an older generation, then the current one
        for asset_id, make in layouts.items():
            a = inventory.assets[asset_id]
            files = make(gen)
            objects = {a.prefix + p: d for p, d in files.items()}
            objects[a.manifest_key] = manifest(files, asset_id)
            _publish(site, asset_id, BUCKET, objects)
        a = inventory.assets["dataset"]
        files = dataset(gen)
        raw = manifest(files, "dataset")
        objects = {f"{a.prefix}objects/{h[:2]}/{h[2:]}": d
                   for d in files.values() for h in [hashlib.sha256(d).hexdigest()]}
        objects[f"{a.prefix}versions/v{gen:04d}.json"] = raw
        _publish(site, "dataset", DATASETS, objects)
        clock.advance(600)
    if snapshot_age_s is not None:
        when = START + timedelta(seconds=1200 - snapshot_age_s) if snapshot_age_s > 0 else \
            START + timedelta(seconds=1200 + 3600)
        for asset_id, objects in site.published.items():
            a = inventory.assets[asset_id]
            assert a.backup_path is not None
            repo.add_snapshot(a.backup_path, {k[len(a.prefix):]: d for k, d in objects.items()},
                              time=when)
    for name, asset_id in (("inference", "weights"), ("inference-adapter", "adapter")):
        a = inventory.assets[asset_id]
        ep = FakeEndpoint(inventory.inference(name), store, a.bucket, a.manifest_key,
                          load_s=LOAD_S)
        ok, message = ep.load(timeout_s=1)
        assert ok, message
        ep.advance = clock.advance  # from now on a reload takes LOAD_S of drill time
        site.endpoints[name] = ep
    return site


def _publish(site: Site, asset_id: str, bucket: str, objects: dict[str, bytes]) -> None:
    for key, data in sorted(objects.items()):
        site.store.put_bytes(bucket, key, data)
    # the last generation published is the current one (for the dataset: v0002 and its blobs)
    site.published[asset_id] = dict(objects)
