"""A model's tensors read from the verified bytes in memory, without a copy.

The node fetches every shard into a read-only buffer and hashes it on the way
(:mod:`lab.node_fetch`); this module parses the safetensors layout of those buffers (an 8-byte
little-endian header length, a JSON header naming each tensor's dtype, shape and byte range,
then the data) and hands out float32 arrays that are views into them. Nothing is read from disk
and nothing is copied, so the weights served are exactly the bytes that matched the manifest.
The checks are as strict as :func:`lab.netweights.load_weights`' (every tensor of the config,
once, with its shape; no other tensor), plus the layout's own: byte ranges inside the data,
contiguous, covering it exactly.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray

from lab.netconfig import ModelConfig
from lab.netmanifest import FormatError
from lab.netweights import FloatArray

_SHARD = re.compile(r"^model-(\d{5})-of-(\d{5})\.safetensors$")
#: a header larger than this is not a model's (safetensors itself refuses 100 MB)
MAX_HEADER_BYTES = 100_000_000


def _tensors(name: str, buf: NDArray[np.uint8]) -> dict[str, FloatArray]:
    """Every tensor of one shard, as read-only float32 views of ``buf``."""
    if buf.size < 8:
        raise FormatError(f"{name}: {buf.size} bytes is too short for safetensors")
    n = int.from_bytes(buf[:8].tobytes(), "little")
    if n > MAX_HEADER_BYTES or 8 + n > buf.size:
        raise FormatError(f"{name}: header length {n} does not fit the file")
    try:
        header = json.loads(buf[8:8 + n].tobytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(f"{name}: header is not JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise FormatError(f"{name}: header is not a JSON object")
    header.pop("__metadata__", None)
    data = 8 + n
    spans: list[tuple[int, int, str]] = []
    out: dict[str, FloatArray] = {}
    for tensor, info in header.items():
        if not isinstance(info, dict):
            raise FormatError(f"{name}: entry {tensor!r} is not an object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype != "F32":
            raise FormatError(f"{name}: tensor {tensor!r} is {dtype}, expected F32")
        if (not isinstance(shape, list)
                or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                           for d in shape)):
            raise FormatError(f"{name}: tensor {tensor!r} has an invalid shape")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise FormatError(f"{name}: tensor {tensor!r} has invalid data_offsets")
        begin, end = offsets
        count = math.prod(shape)
        if not 0 <= begin <= end <= buf.size - data or end - begin != 4 * count:
            raise FormatError(f"{name}: tensor {tensor!r} bytes [{begin}, {end}) do not hold "
                              f"{count} float32 inside the data")
        spans.append((begin, end, tensor))
        arr = np.frombuffer(buf, dtype="<f4", count=count, offset=data + begin).reshape(shape)
        arr.setflags(write=False)
        out[tensor] = arr
    spans.sort()
    at = 0
    for begin, end, tensor in spans:
        if begin != at:
            raise FormatError(f"{name}: tensor {tensor!r} starts at {begin}, not {at} "
                              f"(overlap or hole)")
        at = end
    if at != buf.size - data:
        raise FormatError(f"{name}: tensors cover {at} of {buf.size - data} data bytes")
    return out


def weights_from_buffers(files: Mapping[str, NDArray[np.uint8]],
                         config: ModelConfig) -> dict[str, FloatArray]:
    """Every tensor of the model from its shards' verified bytes (``files``: path -> bytes,
    other files ignored). FormatError when a shard is missing, malformed, or a tensor is
    missing, unexpected, duplicated or of the wrong shape."""
    shards = sorted(p for p in files if _SHARD.match(p))
    if not shards:
        raise FormatError("no model-*-of-*.safetensors shards among the files")
    counts = {int(m.group(2)) for p in shards if (m := _SHARD.match(p))}
    if counts != {len(shards)}:
        raise FormatError(f"shard set is incomplete or mixed: {len(shards)} files")
    shapes = config.tensor_shapes()
    weights: dict[str, FloatArray] = {}
    for path in shards:
        for tensor, arr in _tensors(path, files[path]).items():
            if tensor not in shapes:
                raise FormatError(f"unexpected tensor {tensor!r}")
            if tuple(arr.shape) != shapes[tensor]:
                raise FormatError(f"tensor {tensor!r} is float32{list(arr.shape)}, expected "
                                  f"float32{list(shapes[tensor])}")
            if tensor in weights:
                raise FormatError(f"tensor {tensor!r} appears in more than one shard")
            weights[tensor] = arr
    missing = sorted(set(shapes) - set(weights))
    if missing:
        raise FormatError(f"missing tensors: {', '.join(missing[:5])}")
    return weights
