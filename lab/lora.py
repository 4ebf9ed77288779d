"""LoRA adapters for the lab model: generate, load, validate and merge.

An adapter is what fine-tuning produces on top of a base model: for some of the base's dense
layers, two low-rank matrices A (r x in) and B (out x r) stored in ``adapter_model.safetensors``
(tensors ``<weight>.lora_A`` and ``<weight>.lora_B``, PEFT's orientation), with
``adapter_config.json`` naming the base model, the rank, alpha and the target tensors. Serving it
means using ``W + (alpha / r) * (B @ A)^T`` for each target (our weights are stored in x out).

The merge uses einsum, not BLAS matmul, so the merged weights have the same bits in every process
(the node and the golden file must agree bit for bit).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from lab.netconfig import ModelConfig
from lab.netmanifest import FormatError, Manifest, ManifestFile, file_sha256
from lab.netmodel import golden_inputs
from lab.netweights import FloatArray, forward

ADAPTER_FORMAT = "drillbook-lora/1"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_GOLDEN_STREAM = 0x10AA


@dataclass(frozen=True)
class AdapterConfig:
    name: str
    base_model: str
    rank: int
    alpha: float
    targets: tuple[str, ...]

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def to_json(self) -> str:
        return json.dumps({"format": ADAPTER_FORMAT, "name": self.name,
                           "base_model": self.base_model, "r": self.rank, "lora_alpha": self.alpha,
                           "target_tensors": list(self.targets)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> AdapterConfig:
        try:
            raw = json.loads(text)
            if raw.get("format") != ADAPTER_FORMAT:
                raise FormatError(f"not a {ADAPTER_FORMAT} adapter config")
            return cls(str(raw["name"]), str(raw["base_model"]), int(raw["r"]),
                       float(raw["lora_alpha"]), tuple(str(t) for t in raw["target_tensors"]))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FormatError(f"bad adapter config: {exc}") from exc


@dataclass(frozen=True)
class Adapter:
    config: AdapterConfig
    tensors: Mapping[str, FloatArray]


def generate_adapter(out_dir: Path, base: ModelConfig, *, name: str, seed: int, rank: int = 4,
                     alpha: float = 8.0, layers: tuple[int, ...] = (1, 2)) -> Manifest:
    """Write a seeded adapter for ``base`` (targets: the given hidden layers) with its manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = [ly for ly in base.layers if ly.index in layers]
    if not specs:
        raise FormatError(f"base model {base.name} has none of the layers {layers}")
    cfg = AdapterConfig(name, base.name, rank, alpha, tuple(s.weight for s in specs))
    rng = np.random.default_rng([seed, 0x10AA])
    tensors: dict[str, FloatArray] = {}
    for s in specs:
        a = rng.standard_normal((rank, s.in_dim), dtype=np.float32)
        a *= np.float32(1.0 / np.sqrt(s.in_dim))
        b = rng.standard_normal((s.out_dim, rank), dtype=np.float32)
        b *= np.float32(0.05)
        tensors[f"{s.weight}.lora_A"], tensors[f"{s.weight}.lora_B"] = a, b
    (out_dir / ADAPTER_CONFIG).write_text(cfg.to_json(), encoding="utf-8")
    save_file(tensors, str(out_dir / ADAPTER_WEIGHTS))
    files = []
    for fname in (ADAPTER_CONFIG, ADAPTER_WEIGHTS):
        p = out_dir / fname
        files.append(ManifestFile(fname, p.stat().st_size, file_sha256(p)))
    manifest = Manifest(model=name, files=tuple(files),
                        created_utc=datetime.now(UTC).isoformat(timespec="seconds"))
    (out_dir / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def load_adapter(directory: Path, base: ModelConfig) -> Adapter:
    """Read and validate an adapter against the base model it claims to extend."""
    cfg = AdapterConfig.from_json((directory / ADAPTER_CONFIG).read_bytes())
    if cfg.base_model != base.name:
        raise FormatError(f"adapter {cfg.name} is for {cfg.base_model!r}, not {base.name!r}")
    tensors = load_file(str(directory / ADAPTER_WEIGHTS))
    shapes = base.tensor_shapes()
    for target in cfg.targets:
        if target not in shapes:
            raise FormatError(f"adapter targets unknown tensor {target!r}")
        in_dim, out_dim = shapes[target]
        a, b = tensors.get(f"{target}.lora_A"), tensors.get(f"{target}.lora_B")
        if a is None or b is None or a.shape != (cfg.rank, in_dim) or \
                b.shape != (out_dim, cfg.rank) or a.dtype != np.float32 or b.dtype != np.float32:
            raise FormatError(f"adapter tensors for {target!r} are missing or misshapen")
    return Adapter(cfg, tensors)


def merge(weights: Mapping[str, Any], adapter: Adapter) -> dict[str, FloatArray]:
    """The base weights with the adapter folded in (only the targets are copied)."""
    merged: dict[str, FloatArray] = {k: np.asarray(v) for k, v in weights.items()}
    scale = np.float32(adapter.config.scale)
    for target in adapter.config.targets:
        a = adapter.tensors[f"{target}.lora_A"]
        b = adapter.tensors[f"{target}.lora_B"]
        delta: FloatArray = np.einsum("ri,or->io", a, b)
        delta *= scale
        merged[target] = (np.asarray(weights[target]) + delta).astype(np.float32)
    return merged


def write_adapter_golden(path: Path, base: ModelConfig, base_weights: Mapping[str, Any],
                         adapter: Adapter, count: int = 8) -> None:
    """Golden inputs/outputs for base + adapter (the reference adapter drills compare with)."""
    inputs = golden_inputs(base.seed ^ _GOLDEN_STREAM, count, base.input_dim)
    arr = np.array(inputs, dtype=np.float32).reshape(count, base.input_dim)
    outputs: list[list[float]] = forward(merge(base_weights, adapter), base, arr).tolist()
    path.write_text(json.dumps({"inputs": inputs, "outputs": outputs}, allow_nan=False) + "\n",
                    encoding="utf-8")
