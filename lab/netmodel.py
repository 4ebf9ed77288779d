"""Deterministic toy model artifacts for recovery drills.

A drill needs a model whose bytes and behaviour are both checkable: after a
restore, the harness must be able to prove that the weights are the exact
ones that were backed up (SHA-256 manifest) and that a node serving them
answers exactly as before (golden inputs and outputs). This module generates
a small, real multilayer perceptron from a seed, writes it as safetensors
shards in the usual ``model-0000k-of-0000N.safetensors`` layout, and provides
the one forward pass that both the golden file and the inference node use.

Everything is streamed: tensors are generated and written one shard at a
time and hashes are computed from 8 MiB chunks, so multi-GiB models can be
produced without holding them in memory.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

MODEL_FORMAT = "drillbook-mlp/1"
MANIFEST_FORMAT = "drillbook-manifest/1"
CONFIG_NAME = "config.json"
MANIFEST_NAME = "manifest.json"
GOLDEN_NAME = "golden.json"
HASH_CHUNK_BYTES = 8 * 1024 * 1024

FloatArray = NDArray[np.float32]

_SHARD_RE = re.compile(r"^model-(\d{5})-of-(\d{5})\.safetensors$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Hidden width is kept a multiple of this so matrix rows stay SIMD friendly.
_WIDTH_QUANTUM = 32
# Rough upper bound of the safetensors header cost of one tensor entry; used so
# that shards with several tensors stay at or under the requested shard size.
_HEADER_BYTES_PER_TENSOR = 96
_HEADER_BYTES_FIXED = 16
# Stream id mixed into the seed so golden inputs never share a random stream
# with the weights of the same seed.
_GOLDEN_STREAM = 0x601D


class FormatError(ValueError):
    """A manifest, config or shard set that is malformed or inconsistent."""


def _sha256_file(path: Path) -> tuple[int, str]:
    """Return (size, sha256 hex) of a file, reading it in fixed-size chunks."""
    digest = hashlib.sha256()
    size = 0
    buf = bytearray(HASH_CHUNK_BYTES)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        while True:
            n = fh.readinto(view)
            if not n:
                break
            digest.update(view[:n])
            size += n
    return size, digest.hexdigest()


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def check_relative_path(path: str) -> str:
    """Validate a manifest path: relative, POSIX, no '..', no empty parts.

    Manifests come back from object stores that a drill has just damaged, so
    their paths are treated as untrusted input before being joined to a
    local directory.
    """
    if not path or "\\" in path or "\x00" in path:
        raise FormatError(f"invalid manifest path {path!r}")
    pure = PurePosixPath(path)
    if pure.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")):
        raise FormatError(f"invalid manifest path {path!r}")
    return path


@dataclass(frozen=True)
class ManifestFile:
    """One file of a model directory as recorded in the manifest."""

    path: str
    size: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass(frozen=True)
class Manifest:
    """SHA-256 manifest of every file of a model directory except itself."""

    model: str
    files: tuple[ManifestFile, ...]
    created_utc: str
    format: str = MANIFEST_FORMAT

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "model": self.model,
            "files": [f.to_dict() for f in self.files],
            "created_utc": self.created_utc,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def file(self, path: str) -> ManifestFile | None:
        for entry in self.files:
            if entry.path == path:
                return entry
        return None

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        """Parse and validate a manifest; raises ValueError on anything malformed."""
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FormatError(f"manifest is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise FormatError("manifest must be a JSON object")
        if raw.get("format") != MANIFEST_FORMAT:
            raise FormatError(f"unsupported manifest format {raw.get('format')!r}")
        model = raw.get("model")
        created = raw.get("created_utc")
        files_raw = raw.get("files")
        if not isinstance(model, str) or not isinstance(created, str):
            raise FormatError("manifest needs string 'model' and 'created_utc'")
        if not isinstance(files_raw, list):
            raise FormatError("manifest 'files' must be a list")
        files: list[ManifestFile] = []
        seen: set[str] = set()
        for item in files_raw:
            if not isinstance(item, dict):
                raise FormatError("manifest file entries must be objects")
            path, size, sha = item.get("path"), item.get("size"), item.get("sha256")
            if not isinstance(path, str):
                raise FormatError("manifest file entry needs a string 'path'")
            check_relative_path(path)
            if path == MANIFEST_NAME or path in seen:
                raise FormatError(f"manifest lists {path!r} more than once or lists itself")
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise FormatError(f"manifest entry {path!r} has an invalid size")
            if not isinstance(sha, str) or not _SHA256_RE.match(sha):
                raise FormatError(f"manifest entry {path!r} has an invalid sha256")
            seen.add(path)
            files.append(ManifestFile(path=path, size=size, sha256=sha))
        return cls(model=model, files=tuple(files), created_utc=created)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls.from_json(path.read_bytes())


@dataclass(frozen=True)
class LayerSpec:
    """One dense layer: ``y = act(x @ weight + bias)``, plus ``x`` if residual."""

    index: int
    weight: str
    bias: str
    in_dim: int
    out_dim: int
    activation: str
    residual: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "weight": self.weight,
            "bias": self.bias,
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
            "activation": self.activation,
            "residual": self.residual,
        }

    @property
    def nbytes(self) -> int:
        return 4 * (self.in_dim * self.out_dim + self.out_dim)


_ACTIVATIONS = ("tanh", "linear")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a generated model, as stored in ``config.json``."""

    name: str
    seed: int
    input_dim: int
    output_dim: int
    hidden_dim: int
    layers: tuple[LayerSpec, ...]
    format: str = MODEL_FORMAT
    dtype: str = "float32"

    @property
    def weight_bytes(self) -> int:
        return sum(layer.nbytes for layer in self.layers)

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in self.layers:
            shapes[layer.weight] = (layer.in_dim, layer.out_dim)
            shapes[layer.bias] = (layer.out_dim,)
        return shapes

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "name": self.name,
            "seed": self.seed,
            "dtype": self.dtype,
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "hidden_dim": self.hidden_dim,
            "weight_bytes": self.weight_bytes,
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelConfig:
        """Parse and validate ``config.json``; raises ValueError when malformed."""
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FormatError(f"config is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("format") != MODEL_FORMAT:
            raise FormatError("config is not a drillbook-mlp/1 config")
        if raw.get("dtype", "float32") != "float32":
            raise FormatError("only float32 models are supported")
        try:
            layers = tuple(
                LayerSpec(
                    index=int(item["index"]),
                    weight=str(item["weight"]),
                    bias=str(item["bias"]),
                    in_dim=int(item["in_dim"]),
                    out_dim=int(item["out_dim"]),
                    activation=str(item["activation"]),
                    residual=bool(item["residual"]),
                )
                for item in raw["layers"]
            )
            config = cls(
                name=str(raw["name"]),
                seed=int(raw["seed"]),
                input_dim=int(raw["input_dim"]),
                output_dim=int(raw["output_dim"]),
                hidden_dim=int(raw["hidden_dim"]),
                layers=layers,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"config is malformed: {exc!r}") from exc
        config.validate()
        return config

    @classmethod
    def load(cls, path: Path) -> ModelConfig:
        return cls.from_json(path.read_bytes())

    def validate(self) -> None:
        """Check that the layer chain is consistent; raises ValueError if not."""
        if not self.layers:
            raise FormatError("config has no layers")
        width = self.input_dim
        for i, layer in enumerate(self.layers):
            if layer.index != i or layer.in_dim != width or layer.out_dim <= 0:
                raise FormatError(f"layer {i} does not chain from width {width}")
            if layer.activation not in _ACTIVATIONS:
                raise FormatError(f"layer {i} has unknown activation {layer.activation!r}")
            if layer.residual and layer.in_dim != layer.out_dim:
                raise FormatError(f"layer {i} is residual but not square")
            width = layer.out_dim
        if width != self.output_dim:
            raise FormatError("last layer does not produce output_dim")


def plan_architecture(
    size_bytes: int, shard_bytes: int, input_dim: int, output_dim: int
) -> tuple[int, int]:
    """Choose (hidden_dim, number of square hidden layers) for a weight budget.

    A square hidden layer (weight + bias) is sized to fit in one shard and to
    be at most a quarter of the budget, so even small models have some depth;
    the depth then fills the budget. The result is only approximately
    ``size_bytes``, since layers come in whole units.
    """
    if size_bytes <= 0 or shard_bytes <= 0 or input_dim <= 0 or output_dim <= 0:
        raise FormatError("sizes and dimensions must be positive")
    target = max(min(shard_bytes, size_bytes // 4), 4 * (_WIDTH_QUANTUM**2 + _WIDTH_QUANTUM))
    width = math.isqrt(target // 4)
    while width > 1 and 4 * (width * width + width) > target:
        width -= 1
    width = max(_WIDTH_QUANTUM, width // _WIDTH_QUANTUM * _WIDTH_QUANTUM)
    fixed = 4 * (input_dim * width + width + width * output_dim + output_dim)
    per_layer = 4 * (width * width + width)
    n_hidden = max(0, round((size_bytes - fixed) / per_layer))
    return width, n_hidden


def build_config(
    *, name: str, seed: int, hidden_dim: int, n_hidden: int, input_dim: int, output_dim: int
) -> ModelConfig:
    """Describe the MLP: tanh input layer, tanh residual hidden layers, linear head."""
    dims = [(input_dim, hidden_dim, "tanh", False)]
    dims += [(hidden_dim, hidden_dim, "tanh", True)] * n_hidden
    dims.append((hidden_dim, output_dim, "linear", False))
    layers = tuple(
        LayerSpec(
            index=i,
            weight=f"layers.{i}.weight",
            bias=f"layers.{i}.bias",
            in_dim=d_in,
            out_dim=d_out,
            activation=act,
            residual=res,
        )
        for i, (d_in, d_out, act, res) in enumerate(dims)
    )
    config = ModelConfig(
        name=name,
        seed=seed,
        input_dim=input_dim,
        output_dim=output_dim,
        hidden_dim=hidden_dim,
        layers=layers,
    )
    config.validate()
    return config


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


def shard_name(index: int, count: int) -> str:
    """File name of shard ``index`` (1-based) out of ``count``."""
    return f"model-{index:05d}-of-{count:05d}.safetensors"


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
    size, sha = _sha256_file(config_path)
    files = [ManifestFile(path=CONFIG_NAME, size=size, sha256=sha)]

    rng = np.random.default_rng(seed)
    plan = _plan_shards(config, shard_bytes)
    for k, tensors in enumerate(plan, start=1):
        arrays: dict[str, FloatArray] = {}
        for tensor_name, shape in tensors:
            layer, is_weight = by_name[tensor_name]
            if is_weight:
                arr = rng.standard_normal(shape, dtype=np.float32)
                arr *= np.float32(_weight_std(layer, n_hidden))
            else:
                arr = rng.random(shape, dtype=np.float32)
                arr -= np.float32(0.5)
                arr *= np.float32(0.1)
            arrays[tensor_name] = arr
        path = out_dir / shard_name(k, len(plan))
        save_file(arrays, str(path))
        del arrays
        size, sha = _sha256_file(path)
        files.append(ManifestFile(path=path.name, size=size, sha256=sha))

    manifest = Manifest(model=name, files=tuple(files), created_utc=_utc_now())
    (out_dir / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    return manifest


def _own_readonly(arr: NDArray[Any]) -> FloatArray:
    # Copy out of whatever buffer safetensors handed back (possibly a mapping
    # of the file): served weights must not change if the file does.
    out: FloatArray = np.array(arr, dtype=np.float32, order="C", copy=True)
    out.setflags(write=False)
    return out


def _shard_files(weights_dir: Path) -> list[Path]:
    files = sorted(p for p in weights_dir.iterdir() if _SHARD_RE.match(p.name))
    if not files:
        raise FileNotFoundError(f"no model-*-of-*.safetensors shards in {weights_dir}")
    counts = {int(m.group(2)) for p in files if (m := _SHARD_RE.match(p.name))}
    if counts != {len(files)}:
        raise FormatError(f"shard set in {weights_dir} is incomplete or mixed: {len(files)} files")
    return files


def _check_tensor(name: str, arr: NDArray[Any], shapes: Mapping[str, tuple[int, ...]]) -> None:
    if name not in shapes:
        raise FormatError(f"unexpected tensor {name!r}")
    if arr.dtype != np.float32 or tuple(arr.shape) != shapes[name]:
        raise FormatError(
            f"tensor {name!r} is {arr.dtype}{list(arr.shape)}, expected float32{list(shapes[name])}"
        )


def load_weights(weights_dir: Path, config: ModelConfig) -> dict[str, FloatArray]:
    """Load every tensor of the model into owned, read-only float32 arrays.

    Raises ValueError if a tensor is missing, unexpected, duplicated or has the
    wrong shape, so that a node never serves a partially matching model.
    """
    shapes = config.tensor_shapes()
    weights: dict[str, FloatArray] = {}
    for path in _shard_files(weights_dir):
        loaded = load_file(str(path))
        for tensor_name in list(loaded):
            arr = loaded.pop(tensor_name)
            _check_tensor(tensor_name, arr, shapes)
            if tensor_name in weights:
                raise FormatError(f"tensor {tensor_name!r} appears in more than one shard")
            weights[tensor_name] = _own_readonly(arr)
        del loaded
    missing = sorted(set(shapes) - set(weights))
    if missing:
        raise FormatError(f"missing tensors: {', '.join(missing[:5])}")
    return weights


class ShardedWeights(Mapping[str, FloatArray]):
    """Read-on-demand view of a shard directory, for passes over huge models.

    ``forward`` touches each tensor once, layer by layer, so with this mapping
    only one layer is resident at a time.
    """

    def __init__(self, weights_dir: Path, config: ModelConfig) -> None:
        self._shapes = config.tensor_shapes()
        self._where: dict[str, Path] = {}
        for path in _shard_files(weights_dir):
            with safe_open(str(path), framework="numpy") as handle:
                for tensor_name in handle.keys():  # noqa: SIM118 (safe_open is not a dict)
                    if tensor_name in self._where:
                        raise FormatError(f"tensor {tensor_name!r} appears in more than one shard")
                    self._where[tensor_name] = path
        missing = sorted(set(self._shapes) - set(self._where))
        if missing:
            raise FormatError(f"missing tensors: {', '.join(missing[:5])}")

    def __getitem__(self, key: str) -> FloatArray:
        path = self._where[key]
        with safe_open(str(path), framework="numpy") as handle:
            arr = handle.get_tensor(key)
        _check_tensor(key, arr, self._shapes)
        return _own_readonly(arr)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


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


def forward(
    weights: Mapping[str, NDArray[Any]], config: ModelConfig, inputs: NDArray[Any]
) -> FloatArray:
    """Run the MLP on ``inputs`` of shape (n, input_dim); returns (n, output_dim) float32.

    Each row is computed on its own with ``einsum`` rather than one batched
    matmul: a BLAS gemm picks kernels and blocking by batch size and thread
    count, so the same row could come out with different bits depending on
    what it was batched with. Per-row einsum does not depend on either, which
    is what lets a node's answer be compared bit-for-bit with the golden file.
    """
    x = np.asarray(inputs)
    if x.ndim != 2 or x.shape[1] != config.input_dim:
        raise ValueError(f"inputs must have shape (n, {config.input_dim}), got {list(x.shape)}")
    rows = [np.array(x[i], dtype=np.float32, copy=True) for i in range(x.shape[0])]
    for layer in config.layers:
        w = np.asarray(weights[layer.weight])
        b = np.asarray(weights[layer.bias])
        if w.dtype != np.float32 or w.shape != (layer.in_dim, layer.out_dim):
            raise ValueError(f"tensor {layer.weight!r} has wrong dtype or shape")
        if b.dtype != np.float32 or b.shape != (layer.out_dim,):
            raise ValueError(f"tensor {layer.bias!r} has wrong dtype or shape")
        for i, h in enumerate(rows):
            z: FloatArray = np.einsum("j,jk->k", h, w)
            z += b
            if layer.activation == "tanh":
                np.tanh(z, out=z)
            if layer.residual:
                z += h
            rows[i] = z
        del w, b
    if not rows:
        return np.zeros((0, config.output_dim), dtype=np.float32)
    return np.stack(rows).astype(np.float32, copy=False)


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


def file_sha256(path: Path) -> str:
    """SHA-256 hex of a file, streamed in 8 MiB chunks."""
    return _sha256_file(path)[1]


def verify_dir(model_dir: Path, manifest: Manifest) -> list[str]:
    """Return the manifest paths whose local copy is missing or differs."""
    bad: list[str] = []
    for entry in manifest.files:
        path = model_dir / check_relative_path(entry.path)
        if not path.is_file():
            bad.append(entry.path)
            continue
        size, sha = _sha256_file(path)
        if size != entry.size or sha != entry.sha256:
            bad.append(entry.path)
    return bad


__all__ = [
    "CONFIG_NAME",
    "GOLDEN_NAME",
    "HASH_CHUNK_BYTES",
    "MANIFEST_FORMAT",
    "MANIFEST_NAME",
    "MODEL_FORMAT",
    "FormatError",
    "LayerSpec",
    "Manifest",
    "ManifestFile",
    "ModelConfig",
    "ShardedWeights",
    "build_config",
    "check_relative_path",
    "file_sha256",
    "forward",
    "generate_model",
    "golden_inputs",
    "load_golden",
    "load_weights",
    "plan_architecture",
    "shard_name",
    "verify_dir",
]
