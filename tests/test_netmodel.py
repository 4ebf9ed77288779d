"""Unit tests for lab.netmodel: deterministic generation, sharding, manifest, forward, golden."""

from __future__ import annotations

import json
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from lab import netconfig, netmanifest, netweights
from lab import netmodel as nm

MiB = 1024 * 1024


def _shard_keys(path: Path) -> list[str]:
    with safe_open(str(path), framework="numpy") as handle:
        return list(handle.keys())


def _digest_list(manifest: netmanifest.Manifest) -> list[tuple[str, int, str]]:
    return [(f.path, f.size, f.sha256) for f in manifest.files]


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, netmanifest.Manifest]:
    out = tmp_path_factory.mktemp("small")
    return out, nm.generate_model(out, name="mlp-small", seed=11)


def test_same_seed_same_bytes_different_seed_different(tmp_path: Path) -> None:
    a = nm.generate_model(tmp_path / "a", name="m", seed=3)
    b = nm.generate_model(tmp_path / "b", name="m", seed=3)
    c = nm.generate_model(tmp_path / "c", name="m", seed=4)
    assert _digest_list(a) == _digest_list(b)
    shards_a = {f.path: f.sha256 for f in a.files if f.path != netconfig.CONFIG_NAME}
    shards_c = {f.path: f.sha256 for f in c.files if f.path != netconfig.CONFIG_NAME}
    assert shards_a.keys() == shards_c.keys()
    assert all(shards_a[p] != shards_c[p] for p in shards_a)


def test_default_layout(small_model: tuple[Path, netmanifest.Manifest]) -> None:
    out, manifest = small_model
    paths = [f.path for f in manifest.files]
    assert paths[0] == netconfig.CONFIG_NAME
    assert netmanifest.MANIFEST_NAME not in paths
    shards = paths[1:]
    assert shards == [netweights.shard_name(i, len(shards)) for i in range(1, len(shards) + 1)]
    assert shards[0] == "model-00001-of-00002.safetensors"
    assert sorted(p.name for p in out.iterdir()) == sorted([*paths, netmanifest.MANIFEST_NAME])
    config = netconfig.ModelConfig.load(out / netconfig.CONFIG_NAME)
    assert config.format == netconfig.MODEL_FORMAT
    assert (config.name, config.seed, config.input_dim, config.output_dim) == (
        "mlp-small",
        11,
        64,
        16,
    )
    # "About" the requested size: whole layers only, within a quarter either way.
    assert 3 * MiB <= config.weight_bytes <= 5 * MiB
    for shard in shards:
        assert (out / shard).stat().st_size <= 2 * MiB
    keys = [k for s in shards for k in _shard_keys(out / s)]
    assert sorted(keys) == sorted(config.tensor_shapes())
    raw = json.loads((out / netconfig.CONFIG_NAME).read_text())
    assert raw["layers"][0]["weight"] == "layers.0.weight"
    assert raw["layers"][-1]["activation"] == "linear"
    assert raw["layers"][0]["activation"] == "tanh"


def test_oversized_tensor_gets_own_shard(tmp_path: Path) -> None:
    shard_bytes = 64 * 1024
    manifest = nm.generate_model(
        tmp_path, name="wide", seed=5, size_bytes=2 * MiB, shard_bytes=shard_bytes, input_dim=2048
    )
    config = netconfig.ModelConfig.load(tmp_path / netconfig.CONFIG_NAME)
    first = config.layers[0]
    assert 4 * first.in_dim * first.out_dim > shard_bytes
    oversized = 0
    for entry in manifest.files[1:]:
        keys = _shard_keys(tmp_path / entry.path)
        if entry.size > shard_bytes:
            assert len(keys) == 1, entry.path
            oversized += 1
    assert oversized >= 1
    weights = netweights.load_weights(tmp_path, config)
    assert weights[first.weight].shape == (2048, config.hidden_dim)


def test_manifest_round_trip_and_hashes(small_model: tuple[Path, netmanifest.Manifest]) -> None:
    out, manifest = small_model
    assert netmanifest.Manifest.from_json(manifest.to_json()) == manifest
    assert netmanifest.Manifest.load(out / netmanifest.MANIFEST_NAME) == manifest
    raw = json.loads((out / netmanifest.MANIFEST_NAME).read_text())
    assert list(raw) == ["format", "model", "files", "created_utc"]
    assert raw["format"] == netmanifest.MANIFEST_FORMAT
    assert raw["model"] == "mlp-small"
    assert raw["created_utc"].endswith("Z")
    for entry in manifest.files:
        path = out / entry.path
        assert path.stat().st_size == entry.size
        assert netmanifest.file_sha256(path) == entry.sha256
    assert netmanifest.verify_dir(out, manifest) == []


@pytest.mark.parametrize(
    "mutate",
    [
        lambda m: m.update(format="other/1"),
        lambda m: m["files"][0].update(path="../escape"),
        lambda m: m["files"][0].update(path="/abs"),
        lambda m: m["files"][0].update(sha256="XYZ"),
        lambda m: m["files"][0].update(size=-1),
        lambda m: m["files"].append(dict(m["files"][0])),
        lambda m: m.update(files="nope"),
    ],
)
def test_manifest_rejects_malformed(
    small_model: tuple[Path, netmanifest.Manifest], mutate: object
) -> None:
    _, manifest = small_model
    raw = manifest.to_dict()
    mutate(raw)  # type: ignore[operator]
    with pytest.raises(netmanifest.FormatError):
        netmanifest.Manifest.from_json(json.dumps(raw))


def test_forward_deterministic_and_batch_invariant(
    small_model: tuple[Path, netmanifest.Manifest]
) -> None:
    out, _ = small_model
    config = netconfig.ModelConfig.load(out / netconfig.CONFIG_NAME)
    weights = netweights.load_weights(out, config)
    inputs = np.array(nm.golden_inputs(config.seed, 5, config.input_dim), dtype=np.float32)
    first = netweights.forward(weights, config, inputs)
    assert first.dtype == np.float32
    assert first.shape == (5, config.output_dim)
    assert np.isfinite(first).all()
    assert first.tobytes() == netweights.forward(weights, config, inputs).tobytes()
    # A row's answer must not depend on what it was batched with.
    for i in range(5):
        alone = netweights.forward(weights, config, inputs[i : i + 1])
        assert alone.tobytes() == first[i : i + 1].tobytes()
    lazy = netweights.forward(netweights.ShardedWeights(out, config), config, inputs)
    assert lazy.tobytes() == first.tobytes()
    # Distinct inputs give distinct, well-scaled outputs (not a collapsed network).
    assert len({row.tobytes() for row in first}) == 5
    assert 0.05 < float(np.abs(first).mean()) < 20
    with pytest.raises(ValueError, match="shape"):
        netweights.forward(weights, config, inputs[:, :10])


def test_forward_detects_changed_weights(small_model: tuple[Path, netmanifest.Manifest]) -> None:
    out, _ = small_model
    config = netconfig.ModelConfig.load(out / netconfig.CONFIG_NAME)
    weights = dict(netweights.load_weights(out, config))
    inputs = np.array(nm.golden_inputs(config.seed, 2, config.input_dim), dtype=np.float32)
    before = netweights.forward(weights, config, inputs)
    name = config.layers[1].weight
    changed = weights[name].copy()
    changed[0, 0] += np.float32(0.5)
    weights[name] = changed
    assert not np.array_equal(before, netweights.forward(weights, config, inputs))


def test_golden_inputs_deterministic() -> None:
    a = nm.golden_inputs(7, 4, 64)
    assert a == nm.golden_inputs(7, 4, 64)
    assert a != nm.golden_inputs(8, 4, 64)
    assert len(a) == 4 and all(len(row) == 64 for row in a)
    assert all(-1.0 <= v < 1.0 and float(np.float32(v)) == v for row in a for v in row)


def test_golden_round_trips_exactly(
    small_model: tuple[Path, netmanifest.Manifest], tmp_path: Path
) -> None:
    out, _ = small_model
    config = netconfig.ModelConfig.load(out / netconfig.CONFIG_NAME)
    path = nm.write_golden(tmp_path, config, out, count=6)
    assert path == tmp_path / nm.GOLDEN_NAME
    raw = json.loads(path.read_text())
    assert set(raw) == {"inputs", "outputs"}
    assert raw["inputs"] == nm.golden_inputs(config.seed, 6, config.input_dim)
    inputs, outputs = nm.load_golden(path)
    expected = netweights.forward(netweights.load_weights(out, config), config, inputs)
    assert outputs.tobytes() == expected.tobytes()
    # Every JSON number is exactly a float32, so text -> float32 loses nothing.
    for row_json, row in zip(raw["outputs"], expected, strict=True):
        assert row_json == [float(v) for v in row]


def test_load_weights_rejects_incomplete_or_wrong(tmp_path: Path) -> None:
    nm.generate_model(tmp_path, name="m", seed=1)
    config = netconfig.ModelConfig.load(tmp_path / netconfig.CONFIG_NAME)
    (tmp_path / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(netmanifest.FormatError):
        netweights.load_weights(tmp_path, config)
    other = netconfig.build_config(
        name="m", seed=1, hidden_dim=32, n_hidden=1, input_dim=64, output_dim=16
    )
    nm.generate_model(tmp_path, name="m", seed=1)
    with pytest.raises(netmanifest.FormatError):
        netweights.load_weights(tmp_path, other)


def test_regenerate_replaces_old_shards(tmp_path: Path) -> None:
    nm.generate_model(tmp_path, name="m", seed=1, size_bytes=8 * MiB)
    manifest = nm.generate_model(tmp_path, name="m", seed=1, size_bytes=2 * MiB)
    shards = sorted(p.name for p in tmp_path.glob("model-*.safetensors"))
    assert shards == sorted(f.path for f in manifest.files[1:])


@pytest.mark.parametrize("size", [1 * MiB, 4 * MiB, 256 * MiB, 8 * 1024 * MiB])
def test_plan_scales(size: int) -> None:
    hidden, n_hidden = netconfig.plan_architecture(size, 2 * MiB, 64, 16)
    assert hidden % 32 == 0
    assert 4 * (hidden * hidden + hidden) <= 2 * MiB
    config = netconfig.build_config(
        name="p", seed=0, hidden_dim=hidden, n_hidden=n_hidden, input_dim=64, output_dim=16
    )
    assert 0.75 * size <= config.weight_bytes <= 1.25 * size


def test_64mib_model_streams_with_bounded_memory(tmp_path: Path) -> None:
    tracemalloc.start()
    try:
        started = time.perf_counter()
        manifest = nm.generate_model(tmp_path, name="big", seed=2, size_bytes=64 * MiB)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    shard_total = sum(f.size for f in manifest.files[1:])
    assert shard_total >= 60 * MiB
    # One shard (plus its serialised copy) and one hash buffer, not the model.
    assert peak < 20 * MiB, peak
    assert elapsed < 60
