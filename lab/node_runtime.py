"""The model lifecycle of an inference node: pull, verify, load, swap, unload.

A node serves only a model whose every byte matched the manifest. This module
holds that state machine (``loading`` -> ``ready`` | ``failed``; ``unloaded``
after an unload), the swap of a verified model as one reference, and the
stand-in accelerator every forward pass goes through. It knows nothing of
HTTP: :mod:`lab.node` puts the KServe v2 API on top of it.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import shutil
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np

from lab.netconfig import CONFIG_NAME, ModelConfig
from lab.netmanifest import MANIFEST_NAME, FormatError, Manifest
from lab.netweights import FloatArray, forward
from lab.node_fetch import Bytes, fetch_verified, source_for
from lab.node_pull import (
    MAX_MANIFEST_BYTES,
    FileCheck,
    S3Like,
    StreamingBodyLike,
    describe_error,
    object_key,
)
from lab.node_weights import weights_from_buffers

# one logger for every part of the node process, as before the split into modules
log = logging.getLogger("lab.node")

STATE_LOADING = "loading"
STATE_READY = "ready"
STATE_FAILED = "failed"
STATE_UNLOADED = "unloaded"


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class LoadedModel:
    """An immutable, fully verified model; swapped in and out as one reference."""

    config: ModelConfig
    weights: Mapping[str, FloatArray]
    manifest: Manifest
    manifest_sha256: str
    files: tuple[FileCheck, ...]
    loaded_utc: str
    directory: Path

    @property
    def version(self) -> str:
        return self.manifest_sha256[:12]


@dataclass(frozen=True)
class LoadOutcome:
    """Result of one pull-verify-load attempt."""

    ok: bool
    error: str | None
    files: tuple[FileCheck, ...]
    manifest_sha256: str | None


class LoadFailed(Exception):
    """A pull, verification or load that did not give a servable model (or adapter)."""

    def __init__(
        self, message: str, files: Sequence[FileCheck] = (), manifest_sha256: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.files = tuple(files)
        self.manifest_sha256 = manifest_sha256


class ModelRuntime:
    """The node's model and its state machine, independent of any request protocol.

    States: ``loading`` -> ``ready`` | ``failed``; ``unloaded`` after an unload.
    A reload keeps serving the current model until the new one is verified,
    then swaps; if the new pull fails, the current model is dropped too.
    """

    def __init__(
        self,
        *,
        s3_client: S3Like,
        bucket: str,
        prefix: str,
        model_name: str,
        cache_dir: Path,
        owns_cache_dir: bool = False,
        device_ms: float = 0.0,
        device_slots: int = 1,
        warmup: int = 0,
    ) -> None:
        self.s3_client = s3_client
        self.bucket = bucket
        self.prefix = prefix
        self.model_name = model_name
        self.cache_dir = cache_dir
        self._owns_cache_dir = owns_cache_dir
        self._lock = threading.Lock()
        # Serialises pulls (of the model and of adapters) so that two reloads never interleave
        # their swaps.
        self.load_lock = threading.Lock()
        self._state = STATE_LOADING
        self._error: str | None = None
        self._model: LoadedModel | None = None
        self._files: tuple[FileCheck, ...] = ()
        self._manifest_sha256: str | None = None
        self._attempt = 0
        self._reloading = False
        self._loader: threading.Thread | None = None
        # Fleet extensions (all off by default): the accelerator stand-in, and warm-up passes run
        # before the node reports ready.
        self.device_ms = device_ms
        self._device = threading.BoundedSemaphore(max(1, device_slots))
        self.warmup = warmup

    # -- state -----------------------------------------------------------

    def _set_state(self, state: str, error: str | None, detail: str = "") -> None:
        """Record a transition; caller holds ``self._lock``."""
        previous = self._state
        self._state, self._error = state, error
        line = f"model={self.model_name} state {previous} -> {state}"
        if detail:
            line += f" {detail}"
        if error:
            line += f" error={error}"
        log.info("%s", line)

    @property
    def state(self) -> str:
        with self._lock:
            return self._state

    def current(self) -> LoadedModel | None:
        with self._lock:
            return self._model

    def state_and_error(self) -> tuple[str, str | None]:
        """The state and its error, read together."""
        with self._lock:
            return self._state, self._error

    def snapshot(self) -> dict[str, Any]:
        """Evidence for the harness: state, error and per-file verification."""
        with self._lock:
            model = self._model
            return {
                "model": self.model_name,
                "state": self._state,
                "error": self._error,
                "reloading": self._reloading,
                "manifest_sha256": self._manifest_sha256,
                "version": model.version if model else None,
                "files": [f.to_dict() for f in self._files],
                "loaded_utc": model.loaded_utc if model else None,
                "bucket": self.bucket,
                "prefix": self.prefix,
            }

    # -- loading ---------------------------------------------------------

    def start(self) -> threading.Thread:
        """Begin the initial pull in the background so health checks answer meanwhile."""
        thread = threading.Thread(target=self.load, name="node-loader", daemon=True)
        self._loader = thread
        thread.start()
        return thread

    def next_pull_dir(self, stem: str) -> Path:
        """A fresh cache directory for one pull, made here; the caller holds ``load_lock``. A
        name already taken (a previous process on the same cache volume) is skipped, never
        reused: another process may still serve the files mapped in it."""
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        while True:
            self._attempt += 1
            path = self.cache_dir / f"{stem}-{self._attempt:04d}"
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path

    def load(self) -> LoadOutcome:
        """Pull, verify and load the model from the store; swap it in if good."""
        with self.load_lock:
            with self._lock:
                dest = self.next_pull_dir("pull")
                self._reloading = True
                if self._model is None and self._state != STATE_LOADING:
                    self._set_state(STATE_LOADING, None)
            try:
                model = self._pull_and_load(dest)
                self._warm_up(model)
            except LoadFailed as exc:
                return self._fail(dest, exc)
            # Whatever goes wrong while loading, the node must end up in a
            # definite state rather than stuck in 'loading'.
            except Exception as exc:  # noqa: BLE001
                return self._fail(dest, LoadFailed(describe_error(exc)))
            with self._lock:
                old = self._model
                self._model = model
                self._files = model.files
                self._manifest_sha256 = model.manifest_sha256
                self._reloading = False
                self._set_state(
                    STATE_READY,
                    None,
                    f"version={model.version} files={len(model.files)} "
                    f"bytes={model.manifest.total_bytes}",
                )
            if old is not None and old.directory != model.directory:
                shutil.rmtree(old.directory, ignore_errors=True)
            return LoadOutcome(True, None, model.files, model.manifest_sha256)

    def _warm_up(self, model: LoadedModel) -> None:
        """Run forward passes (each paying the device time) before the node reports ready, as a
        serving runtime compiles kernels and fills caches before taking traffic."""
        if self.warmup <= 0:
            return
        batch: FloatArray = np.zeros((1, model.config.input_dim), dtype=np.float32)
        for _ in range(self.warmup):
            self._run_on_device(model, batch)
        log.info("model=%s warm-up: %d passes", self.model_name, self.warmup)

    def _run_on_device(self, model: LoadedModel, batch: FloatArray) -> FloatArray:
        """One forward pass holding a device slot. The lab has no GPU: ``device_ms`` stands for
        the accelerator's time per batch, so that a node has a finite capacity as a real one
        does and losing a node costs throughput."""
        with self._device:
            with np.errstate(over="ignore", invalid="ignore"):
                outputs = forward(model.weights, model.config, batch)
            if self.device_ms > 0:
                time.sleep(self.device_ms / 1000.0)
        return outputs

    def _fail(self, dest: Path, exc: LoadFailed) -> LoadOutcome:
        with self._lock:
            old = self._model
            # A node whose store copy is bad must stop serving: stale weights
            # answering correctly would look like a successful recovery.
            self._model = None
            self._files = exc.files
            self._manifest_sha256 = exc.manifest_sha256
            self._reloading = False
            self._set_state(STATE_FAILED, exc.message)
        shutil.rmtree(dest, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old.directory, ignore_errors=True)
        return LoadOutcome(False, exc.message, exc.files, exc.manifest_sha256)

    def _pull_and_load(self, dest: Path) -> LoadedModel:
        key = object_key(self.prefix, MANIFEST_NAME)
        try:
            response = self.s3_client.get_object(Bucket=self.bucket, Key=key)
            body = cast(StreamingBodyLike, response["Body"])
            raw = body.read(MAX_MANIFEST_BYTES + 1)
            close = getattr(body, "close", None)
            if callable(close):
                close()
        # Missing key, bad credentials, unreachable store: all mean "not loadable".
        except Exception as exc:
            raise LoadFailed(
                f"cannot fetch s3://{self.bucket}/{key}: {describe_error(exc)}"
            ) from exc
        if len(raw) > MAX_MANIFEST_BYTES:
            raise LoadFailed(f"manifest larger than {MAX_MANIFEST_BYTES} bytes")
        manifest_sha = hashlib.sha256(raw).hexdigest()
        try:
            manifest = Manifest.from_json(raw)
        except FormatError as exc:
            raise LoadFailed(f"bad manifest: {exc}", manifest_sha256=manifest_sha) from exc
        if manifest.model != self.model_name:
            raise LoadFailed(
                f"manifest is for model {manifest.model!r}, not {self.model_name!r}",
                manifest_sha256=manifest_sha,
            )
        if manifest.file(CONFIG_NAME) is None:
            raise LoadFailed("manifest does not list config.json", manifest_sha256=manifest_sha)

        dest.mkdir(parents=True, exist_ok=True)
        (dest / MANIFEST_NAME).write_bytes(raw)
        # straight into this pull's cache files, mapped (the model cache on the node's
        # volume, as a serving runtime keeps it), hashed as it arrives and served from those
        # same pages: no file is written twice or read again (a new source per pull:
        # presigned URLs expire)
        try:
            checks, data = fetch_verified(source_for(self.s3_client, self.bucket), self.prefix,
                                          manifest.files,
                                          allocate=lambda e: cache_file(dest / e.path, e.size))
        except OSError as exc:  # a full or read-only cache volume: the pull fails, as on a node
            raise LoadFailed(f"cannot write the model cache {dest}: {exc}", [],
                             manifest_sha) from exc
        bad = [c for c in checks if not c.ok]
        if bad:
            shown = "; ".join(c.describe() for c in bad[:5])
            more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
            raise LoadFailed(
                f"{len(bad)} of {len(checks)} files failed verification: {shown}{more}",
                checks,
                manifest_sha,
            )
        try:
            config = ModelConfig.from_json(data[CONFIG_NAME].tobytes())
            if config.name != self.model_name:
                raise FormatError(f"config is for model {config.name!r}")
            weights = weights_from_buffers(data, config)
        except (FormatError, OSError) as exc:
            raise LoadFailed(f"cannot load weights: {exc}", checks, manifest_sha) from exc
        return LoadedModel(
            config=config,
            weights=weights,
            manifest=manifest,
            manifest_sha256=manifest_sha,
            files=tuple(checks),
            loaded_utc=_utc_now(),
            directory=dest,
        )

    def unload(self) -> None:
        with self.load_lock, self._lock:
            old = self._model
            self._model = None
            self._set_state(STATE_UNLOADED, None)
        if old is not None:
            shutil.rmtree(old.directory, ignore_errors=True)

    def close(self) -> None:
        """Drop the model and, if the cache directory was ours, delete it."""
        with self._lock:
            self._model = None
        if self._owns_cache_dir:
            shutil.rmtree(self.cache_dir, ignore_errors=True)


def cache_file(path: Path, size: int) -> Bytes:
    """The buffer one file of a pull is fetched into: the cache file itself, its blocks
    reserved first (a full volume fails here, with ENOSPC, not later as SIGBUS on a page) and
    mapped shared, so the bytes land in the file's pages and the model is served from them (as
    a runtime maps safetensors). Copying the verified bytes to the cache afterwards cost a
    second pass over the model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # a new file in this pull's own directory: never truncate one that something maps
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        if size == 0:
            return np.empty(0, dtype=np.uint8)
        os.posix_fallocate(fd, 0, size)
        mapped = mmap.mmap(fd, size, flags=mmap.MAP_SHARED,
                           prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    return np.frombuffer(mapped, dtype=np.uint8)
