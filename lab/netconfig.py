"""The architecture of a generated model: ``config.json`` and how it is chosen.

A node must refuse a config that does not describe the weights it pulled, and
the generator must pick a shape that fills a requested weight budget; both
read this one description of the MLP (its layers, their widths, activations
and residual links).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.netmanifest import FormatError

MODEL_FORMAT = "drillbook-mlp/1"
CONFIG_NAME = "config.json"

# Hidden width is kept a multiple of this so matrix rows stay SIMD friendly.
_WIDTH_QUANTUM = 32


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
