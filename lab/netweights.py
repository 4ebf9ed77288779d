"""Model weights on disk (safetensors shards) and the one forward pass over them.

The golden file and the inference node must compute exactly the same bits
from the same weights; this module holds the shard layout
(``model-0000k-of-0000N.safetensors``), the strict loader that never lets a
node serve a partially matching model, a read-on-demand view for passes over
huge models, and the forward pass both sides use.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors import safe_open
from safetensors.numpy import load_file

from lab.netconfig import ModelConfig
from lab.netmanifest import FormatError

FloatArray = NDArray[np.float32]

_SHARD_RE = re.compile(r"^model-(\d{5})-of-(\d{5})\.safetensors$")


def shard_name(index: int, count: int) -> str:
    """File name of shard ``index`` (1-based) out of ``count``."""
    return f"model-{index:05d}-of-{count:05d}.safetensors"


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
