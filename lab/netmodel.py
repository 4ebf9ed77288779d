"""Deterministic toy model artifacts for recovery drills.

A drill needs a model whose bytes and behaviour are both checkable: after a
restore, the harness must be able to prove that the weights are the exact
ones that were backed up (SHA-256 manifest) and that a node serving them
answers exactly as before (golden inputs and outputs). This module generates
a small, real multilayer perceptron from a seed, writes it as safetensors
shards with its ``config.json`` and ``manifest.json``, and writes the golden
file from the same forward pass the inference node uses. The format lives in
:mod:`lab.netmanifest` (manifest, hashing), :mod:`lab.netconfig`
(architecture) and :mod:`lab.netweights` (shards, forward pass).

Everything is streamed: tensors are generated and written one shard at a
time and hashes are computed from 8 MiB chunks, so multi-GiB models can be
produced without holding them in memory.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from lab.netconfig import CONFIG_NAME, LayerSpec, ModelConfig, build_config, plan_architecture
from lab.netmanifest import MANIFEST_NAME, Manifest, ManifestFile, sha256_file
from lab.netweights import FloatArray, ShardedWeights, forward, shard_name

GOLDEN_NAME = "golden.json"

# Rough upper bound of the safetensors header cost of one tensor entry; used so
# that shards with several tensors stay at or under the requested shard size.
_HEADER_BYTES_PER_TENSOR = 96
_HEADER_BYTES_FIXED = 16
# Stream id mixed into the seed so golden inputs never share a random stream
# with the weights of the same seed.
_GOLDEN_STREAM = 0x601D


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _uniform(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> FloatArray:
    """Weights uniform on [-a, a) with standard deviation ``std`` (a = std x sqrt 3, Kaiming's
    uniform form), made from random bits: 23 of them are the mantissa of a float in [1, 2).
    About five times faster than normal draws, which made up most of the lab's start-up time at
    GiB sizes."""
    bits = rng.integers(0, 1 << 23, size=shape, dtype=np.uint32)
    bits |= np.uint32(0x3F800000)
    arr = bits.view(np.float32)
    arr -= np.float32(1.5)
    arr *= np.float32(2.0 * math.sqrt(3.0) * std)
    return arr


def _weight_std(layer: LayerSpec, n_residual: int) -> float:
    if layer.residual:
        # Scaling each residual branch by 1/sqrt(depth) keeps activations O(1)
        # at any depth, so GiB-sized models still map distinct inputs to
        # distinct, well-scaled outputs instead of saturating or collapsing.
        return 1.0 / math.sqrt(layer.in_dim * max(1, n_residual))
    if layer.activation == "tanh":
        # Gain > 1 on the input layer puts tanh in its non-linear range.
        return 1.5 / math.sqrt(layer.in_dim)
    return 1.0 / math.sqrt(layer.in_dim)


def _plan_shards(config: ModelConfig, shard_bytes: int) -> list[list[tuple[str, tuple[int, ...]]]]:
    """Pack tensors, in layer order, into shards of at most ~shard_bytes.

    Order is kept so that generating shard after shard consumes the random
    stream exactly as generating the whole model at once would.
    """
    shards: list[list[tuple[str, tuple[int, ...]]]] = []
    current: list[tuple[str, tuple[int, ...]]] = []
    used = _HEADER_BYTES_FIXED
    for name, shape in config.tensor_shapes().items():
        cost = 4 * math.prod(shape) + _HEADER_BYTES_PER_TENSOR
        if _HEADER_BYTES_FIXED + cost > shard_bytes:
            # Never split a tensor: an oversized one gets a shard to itself.
            if current:
                shards.append(current)
            shards.append([(name, shape)])
            current, used = [], _HEADER_BYTES_FIXED
            continue
        if current and used + cost > shard_bytes:
            shards.append(current)
            current, used = [], _HEADER_BYTES_FIXED
        current.append((name, shape))
        used += cost
    if current:
        shards.append(current)
    return shards


def generate_model(
    out_dir: Path,
    *,
    name: str,
    seed: int,
    size_bytes: int = 4 * 1024**2,
    shard_bytes: int = 2 * 1024**2,
    input_dim: int = 64,
    output_dim: int = 16,
) -> Manifest:
    """Generate a seeded MLP of about ``size_bytes`` of weights into ``out_dir``.

    Writes the safetensors shards, ``config.json`` and ``manifest.json`` (the
    latter covering every other file written here) and returns the manifest.
    Identical arguments produce byte-identical shards and config on the same
    numpy version. At most one shard of tensors is in memory at a time.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    # Leftover shards of a previous run would be picked up by load_weights, and
    # a leftover golden file would describe the previous weights.
    for stale in [*out_dir.glob("model-*-of-*.safetensors"), out_dir / GOLDEN_NAME]:
        stale.unlink(missing_ok=True)
    hidden, n_hidden = plan_architecture(size_bytes, shard_bytes, input_dim, output_dim)
    config = build_config(
        name=name,
        seed=seed,
        hidden_dim=hidden,
        n_hidden=n_hidden,
        input_dim=input_dim,
        output_dim=output_dim,
    )
    by_name: dict[str, tuple[LayerSpec, bool]] = {}
    for layer in config.layers:
        by_name[layer.weight] = (layer, True)
        by_name[layer.bias] = (layer, False)

    config_path = out_dir / CONFIG_NAME
    config_path.write_text(config.to_json(), encoding="utf-8")
    size, sha = sha256_file(config_path)
    files = [ManifestFile(path=CONFIG_NAME, size=size, sha256=sha)]

    rng = np.random.default_rng(seed)
    plan = _plan_shards(config, shard_bytes)
    for k, tensors in enumerate(plan, start=1):
        arrays: dict[str, FloatArray] = {}
        for tensor_name, shape in tensors:
            layer, is_weight = by_name[tensor_name]
            if is_weight:
                arr = _uniform(rng, shape, _weight_std(layer, n_hidden))
            else:
                arr = rng.random(shape, dtype=np.float32)
                arr -= np.float32(0.5)
                arr *= np.float32(0.1)
            arrays[tensor_name] = arr
        path = out_dir / shard_name(k, len(plan))
        save_file(arrays, str(path))
        del arrays
        size, sha = sha256_file(path)
        files.append(ManifestFile(path=path.name, size=size, sha256=sha))

    manifest = Manifest(model=name, files=tuple(files), created_utc=_utc_now())
    (out_dir / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def golden_inputs(seed: int, count: int, input_dim: int) -> list[list[float]]:
    """Deterministic float32-valued inputs in [-1, 1) for the golden check."""
    if count < 0 or input_dim <= 0:
        raise ValueError("count must be >= 0 and input_dim > 0")
    rng = np.random.default_rng([seed, _GOLDEN_STREAM])
    arr = rng.random((count, input_dim), dtype=np.float32)
    arr *= np.float32(2.0)
    arr -= np.float32(1.0)
    rows: list[list[float]] = arr.tolist()
    return rows


def write_golden(out_dir: Path, config: ModelConfig, weights_dir: Path, *, count: int = 8) -> Path:
    """Write ``golden.json`` = {"inputs", "outputs"} computed with :func:`forward`.

    Weights are read from the shards in ``weights_dir`` one layer at a time.
    ``golden.json`` is not part of the manifest: it is the harness's reference,
    normally kept apart from the store a drill damages.
    """
    inputs = golden_inputs(config.seed, count, config.input_dim)
    weights = ShardedWeights(weights_dir, config)
    arr = np.array(inputs, dtype=np.float32).reshape(count, config.input_dim)
    outputs: list[list[float]] = forward(weights, config, arr).tolist()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / GOLDEN_NAME
    # Python's float repr is shortest-round-trip, and every value is a float32
    # widened exactly to float64, so the file reproduces the bits.
    path.write_text(
        json.dumps({"inputs": inputs, "outputs": outputs}, allow_nan=False) + "\n",
        encoding="utf-8",
    )
    return path


def load_golden(path: Path) -> tuple[FloatArray, FloatArray]:
    """Read ``golden.json`` back as float32 (inputs, outputs) arrays."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    inputs = np.array(raw["inputs"], dtype=np.float32)
    outputs = np.array(raw["outputs"], dtype=np.float32)
    return inputs, outputs


__all__ = [
    "GOLDEN_NAME",
    "generate_model",
    "golden_inputs",
    "load_golden",
    "write_golden",
]
