"""LoRA adapters on an inference node, served as ``<model>+<adapter>``.

Optional: a node has none until a load request registers one. An adapter is
pulled and verified like the base model (its own manifest under its own
prefix), merged into the base weights on first use, and re-merged when either
side is reloaded, so a drill can prove that a restored adapter answers as
before on a restored base.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from lab.netconfig import ModelConfig
from lab.netmanifest import MANIFEST_NAME, FormatError, Manifest
from lab.netweights import FloatArray, forward
from lab.node_http import (
    Response,
    Routes,
    output_tensors,
    parse_infer_inputs,
    parse_json_object,
)
from lab.node_pull import (
    MAX_MANIFEST_BYTES,
    FileCheck,
    StreamingBodyLike,
    describe_error,
    object_key,
    pull_verified,
)
from lab.node_runtime import (
    STATE_FAILED,
    STATE_LOADING,
    STATE_READY,
    STATE_UNLOADED,
    LoadFailed,
    ModelRuntime,
)

# one logger for every part of the node process, as before the split into modules
log = logging.getLogger("lab.node")


@dataclass
class _AdapterSlot:
    """A registered adapter: where it lives, and the verified copy being served."""

    prefix: str
    loaded: tuple[Any, str] | None = None  # (lab.lora.Adapter, manifest sha256)
    state: str = STATE_LOADING
    error: str | None = None
    merged: tuple[tuple[str, str], Mapping[str, FloatArray]] | None = None


class Adapters:
    """The adapters registered on one node, and their routes."""

    def __init__(self, node: ModelRuntime) -> None:
        self._node = node
        self._adapters: dict[str, _AdapterSlot] = {}

    def resolve(self, parts: list[str], body: bytes) -> Routes | Response | None:
        """Routes for "<model>+<adapter>" names; None for every other path."""
        if len(parts) in (3, 4) and parts[:2] == ["v2", "models"]:
            name = parts[2]
            rest = parts[3:]
        elif len(parts) == 5 and parts[:3] == ["v2", "repository", "models"]:
            name = parts[3]
            rest = ["repository", parts[4]]
        else:
            return None
        base, plus, adapter = name.partition("+")
        if not plus or base != self._node.model_name or not adapter:
            return None
        if rest == ["repository", "load"]:
            return {"POST": lambda: self._load(adapter, body)}
        slot = self._adapters.get(adapter)
        if slot is None:
            return 404, {"error": f"adapter {adapter!r} is not registered"}
        if rest == ["ready"] or not rest:
            ok = slot.loaded is not None and self._node.current() is not None
            return {"GET": lambda: (200 if ok else 503, {"name": name, "ready": ok,
                                                         "state": slot.state,
                                                         "error": slot.error})}
        if rest == ["infer"]:
            return {"POST": lambda: self._infer(name, slot, body)}
        if rest == ["repository", "unload"]:
            return {"POST": lambda: self._unload(adapter)}
        return 404, {"error": "not found"}

    def _load(self, adapter: str, body: bytes) -> Response:
        params = parse_json_object(body or b"{}").get("parameters") or {}
        slot = self._adapters.get(adapter)
        prefix = params.get("adapter_prefix") if isinstance(params, dict) else None
        if slot is None or isinstance(prefix, str):
            if not isinstance(prefix, str) or not prefix:
                return 400, {"error": f"adapter {adapter!r} is new: give "
                                      "parameters.adapter_prefix"}
            slot = self._adapters.setdefault(adapter, _AdapterSlot(prefix))
            slot.prefix = prefix
        with self._node.load_lock:
            base = self._node.current()
            dest = self._node.next_pull_dir(f"adapter-{adapter}")
            try:
                if base is None:
                    raise LoadFailed("the base model is not loaded")
                loaded, checks = self._pull(slot.prefix, dest, base.config)
            except LoadFailed as exc:
                shutil.rmtree(dest, ignore_errors=True)
                slot.loaded, slot.state, slot.error = None, STATE_FAILED, exc.message
                log.info("adapter=%s state -> failed error=%s", adapter, exc.message)
                return 502, {"error": exc.message, "state": STATE_FAILED,
                             "files": [f.to_dict() for f in exc.files]}
            slot.loaded, slot.state, slot.error = loaded, STATE_READY, None
            slot.merged = None
            log.info("adapter=%s state -> ready version=%s", adapter, loaded[1][:12])
            return 200, {"name": f"{self._node.model_name}+{adapter}", "state": STATE_READY,
                         "manifest_sha256": loaded[1], "files": [f.to_dict() for f in checks]}

    def _pull(
        self, prefix: str, dest: Path, base: ModelConfig
    ) -> tuple[tuple[Any, str], list[FileCheck]]:
        from lab.lora import load_adapter

        key = object_key(prefix, MANIFEST_NAME)
        try:
            response = self._node.s3_client.get_object(Bucket=self._node.bucket, Key=key)
            raw = cast(StreamingBodyLike, response["Body"]).read(MAX_MANIFEST_BYTES + 1)
        # Missing key, bad credentials, unreachable store: all mean "not loadable".
        except Exception as exc:
            raise LoadFailed(f"cannot fetch s3://{self._node.bucket}/{key}: "
                             f"{describe_error(exc)}") from exc
        manifest_sha = hashlib.sha256(raw).hexdigest()
        try:
            manifest = Manifest.from_json(raw)
        except FormatError as exc:
            raise LoadFailed(f"bad adapter manifest: {exc}") from exc
        checks = pull_verified(self._node.s3_client, self._node.bucket, prefix, dest, manifest)
        bad = [c for c in checks if not c.ok]
        if bad:
            raise LoadFailed(f"{len(bad)} of {len(checks)} adapter files failed verification: "
                             + "; ".join(c.describe() for c in bad[:5]), checks)
        try:
            adapter = load_adapter(dest, base)
        except (FormatError, OSError) as exc:
            raise LoadFailed(f"cannot load adapter: {exc}", checks) from exc
        return (adapter, manifest_sha), checks

    def _unload(self, adapter: str) -> Response:
        slot = self._adapters.pop(adapter, None)
        return 200, {"name": f"{self._node.model_name}+{adapter}", "state": STATE_UNLOADED,
                     "was_registered": slot is not None}

    def _infer(self, name: str, slot: _AdapterSlot, body: bytes) -> Response:
        from lab.lora import merge

        model = self._node.current()
        loaded = slot.loaded
        if model is None or loaded is None:
            return 503, {"error": f"{name} not ready", "state": slot.state, "error_detail":
                         slot.error}
        adapter, adapter_sha = loaded
        # Merged weights depend on both versions: a reloaded base invalidates them.
        key = (model.manifest_sha256, adapter_sha)
        merged = slot.merged
        if merged is None or merged[0] != key:
            merged = (key, merge(model.weights, adapter))
            slot.merged = merged
        request = parse_json_object(body)
        batch = parse_infer_inputs(request, model.config.input_dim)
        with np.errstate(over="ignore", invalid="ignore"):
            outputs = forward(merged[1], model.config, batch)
        return 200, {"model_name": name, "model_version": f"{model.version}+{adapter_sha[:12]}",
                     "outputs": output_tensors(outputs)}
