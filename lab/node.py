"""The lab's stand-in for a GPU inference node.

A recovery drill needs something that behaves like a real serving node: it
pulls model weights from the object store at start-up, refuses to serve
unless every byte matches the manifest, and answers the KServe v2 / Open
Inference Protocol so the harness can probe liveness, readiness and actual
inference results (compared bit-for-bit with golden outputs). Reloading via
the Triton model-repository extension re-pulls from the store, which is how
the harness proves that a restored store really serves the original model.

Run as::

    python -m lab.node --endpoint http://127.0.0.1:PORT --bucket B --prefix P/ \\
        --model-name NAME --port N [--region default] [--cache-dir DIR]

S3 credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import logging
import math
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, cast
from urllib.parse import unquote, urlsplit

import numpy as np

from lab.netmodel import (
    CONFIG_NAME,
    HASH_CHUNK_BYTES,
    MANIFEST_NAME,
    FloatArray,
    FormatError,
    Manifest,
    ModelConfig,
    check_relative_path,
    forward,
    load_weights,
)

log = logging.getLogger("lab.node")

PLATFORM = "drillbook-mlp"
INPUT_NAME = "input"
OUTPUT_NAME = "output"
MAX_BODY_BYTES = 64 * 1024 * 1024
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
#: objects a node pulls at once when it loads a model
PULL_THREADS = 4
_FLOAT32_MAX = float(np.finfo(np.float32).max)

STATE_LOADING = "loading"
STATE_READY = "ready"
STATE_FAILED = "failed"
STATE_UNLOADED = "unloaded"


class StreamingBodyLike(Protocol):
    """The part of botocore's StreamingBody that pulling needs."""

    def read(self, amt: int | None = ...) -> bytes: ...


class S3Like(Protocol):
    """The part of a boto3 S3 client that pulling needs (lets tests use a fake)."""

    def get_object(self, *, Bucket: str, Key: str) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class FileCheck:
    """Outcome of pulling and verifying one manifest entry.

    ``actual_sha256`` is None when the object could not be read completely
    (missing, unreadable, cut off); ``error`` then says why.
    """

    path: str
    expected_sha256: str
    actual_sha256: str | None
    size_ok: bool
    ok: bool
    expected_size: int = 0
    actual_size: int | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.actual_sha256,
            "ok": self.ok,
            "expected_sha256": self.expected_sha256,
            "size_ok": self.size_ok,
            "expected_size": self.expected_size,
            "size": self.actual_size,
            "error": self.error,
        }

    def describe(self) -> str:
        if self.ok:
            return f"{self.path}: ok"
        if self.actual_sha256 is None:
            return f"{self.path}: {self.error or 'not readable'}"
        if not self.size_ok:
            return f"{self.path}: size {self.actual_size} != {self.expected_size}"
        return (
            f"{self.path}: sha256 {self.actual_sha256[:12]} != expected {self.expected_sha256[:12]}"
        )


def object_key(prefix: str, path: str) -> str:
    """Key of ``path`` under ``prefix``; a non-empty prefix is treated as a folder."""
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return prefix + path


def describe_error(exc: BaseException) -> str:
    """Short, log-friendly description, naming the S3 error code when there is one."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        err = response.get("Error")
        if isinstance(err, Mapping) and err.get("Code"):
            message = err.get("Message")
            return f"{err['Code']}: {message}" if message else str(err["Code"])
    return f"{type(exc).__name__}: {exc}"


def _pull_one(
    s3_client: S3Like,
    bucket: str,
    prefix: str,
    dest: Path,
    expected_path: str,
    expected_sha256: str,
    expected_size: int,
) -> FileCheck:
    def failed(error: str) -> FileCheck:
        return FileCheck(
            path=expected_path,
            expected_sha256=expected_sha256,
            actual_sha256=None,
            size_ok=False,
            ok=False,
            expected_size=expected_size,
            error=error,
        )

    try:
        check_relative_path(expected_path)
    except ValueError as exc:
        return failed(str(exc))
    target = dest / expected_path
    key = object_key(prefix, expected_path)
    digest = hashlib.sha256()
    size = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        response = s3_client.get_object(Bucket=bucket, Key=key)
        body = cast(StreamingBodyLike, response["Body"])
        try:
            with target.open("wb") as fh:
                # Hash while streaming: the bytes that get verified are the
                # bytes that get written, and the file is never re-read.
                while chunk := body.read(HASH_CHUNK_BYTES):
                    digest.update(chunk)
                    fh.write(chunk)
                    size += len(chunk)
        finally:
            close = getattr(body, "close", None)
            if callable(close):
                close()
    # Any failure while fetching one object (S3 error, connection reset, cut
    # stream, disk full) means this file is unverified; record it and go on so
    # the evidence lists every damaged file, not just the first.
    except Exception as exc:  # noqa: BLE001
        target.unlink(missing_ok=True)
        return failed(describe_error(exc))
    actual = digest.hexdigest()
    size_ok = size == expected_size
    return FileCheck(
        path=expected_path,
        expected_sha256=expected_sha256,
        actual_sha256=actual,
        size_ok=size_ok,
        ok=size_ok and actual == expected_sha256,
        expected_size=expected_size,
        actual_size=size,
    )


def pull_verified(
    s3_client: S3Like, bucket: str, prefix: str, dest: Path, manifest: Manifest
) -> list[FileCheck]:
    """Download every manifest file under ``prefix`` into ``dest``, verifying as it streams.

    Each object is read once, in 8 MiB chunks, hashed and written at the same
    time. Returns one FileCheck per manifest entry, in manifest order; the
    caller decides what a failure means. Never raises for a bad or missing
    object.
    """
    dest.mkdir(parents=True, exist_ok=True)
    # several objects at once (boto3 clients are thread-safe): a model of a few large shards
    # loads at the store's speed, not one stream's
    with concurrent.futures.ThreadPoolExecutor(PULL_THREADS) as pool:
        return list(pool.map(
            lambda f: _pull_one(s3_client, bucket, prefix, dest, f.path, f.sha256, f.size),
            manifest.files))


def make_s3_client(endpoint: str, region: str) -> S3Like:
    """boto3 S3 client for an on-prem gateway: path-style, SigV4, credentials from env."""
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path"},
        signature_version="s3v4",
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        # Ceph RGW does not speak the newer flexible-checksum headers.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client = boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)
    return cast(S3Like, client)


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


class _LoadFailed(Exception):
    def __init__(
        self, message: str, files: Sequence[FileCheck] = (), manifest_sha256: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.files = tuple(files)
        self.manifest_sha256 = manifest_sha256


class _BadRequest(Exception):
    pass


Response = tuple[int, dict[str, Any]]


@dataclass
class _AdapterSlot:
    """A registered adapter: where it lives, and the verified copy being served."""

    prefix: str
    loaded: tuple[Any, str] | None = None  # (lab.lora.Adapter, manifest sha256)
    state: str = STATE_LOADING
    error: str | None = None
    merged: tuple[tuple[str, str], Mapping[str, FloatArray]] | None = None


class NodeService:
    """State machine and request logic of the node, independent of HTTP transport.

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
        serve_as: str | None = None,
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
        # Serialises pulls so that two reloads never interleave their swaps.
        self._load_lock = threading.Lock()
        self._state = STATE_LOADING
        self._error: str | None = None
        self._model: LoadedModel | None = None
        self._files: tuple[FileCheck, ...] = ()
        self._manifest_sha256: str | None = None
        self._attempt = 0
        self._reloading = False
        self._loader: threading.Thread | None = None
        # Fleet extensions (all off by default): the name the model also answers to (a fallback
        # pool serving a smaller model under the service's name), the accelerator stand-in, and
        # warm-up passes run before the node reports ready.
        self._names = {model_name} | ({serve_as} if serve_as else set())
        self.device_ms = device_ms
        self._device = threading.BoundedSemaphore(max(1, device_slots))
        self.warmup = warmup

        # LoRA adapters served as "<model>+<adapter>", registered by a load request
        self._adapters: dict[str, _AdapterSlot] = {}

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

    def load(self) -> LoadOutcome:
        """Pull, verify and load the model from the store; swap it in if good."""
        with self._load_lock:
            with self._lock:
                self._attempt += 1
                dest = self.cache_dir / f"pull-{self._attempt:04d}"
                self._reloading = True
                if self._model is None and self._state != STATE_LOADING:
                    self._set_state(STATE_LOADING, None)
            try:
                model = self._pull_and_load(dest)
                self._warm_up(model)
            except _LoadFailed as exc:
                return self._fail(dest, exc)
            # Whatever goes wrong while loading, the node must end up in a
            # definite state rather than stuck in 'loading'.
            except Exception as exc:  # noqa: BLE001
                return self._fail(dest, _LoadFailed(describe_error(exc)))
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

    def _fail(self, dest: Path, exc: _LoadFailed) -> LoadOutcome:
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
            raise _LoadFailed(
                f"cannot fetch s3://{self.bucket}/{key}: {describe_error(exc)}"
            ) from exc
        if len(raw) > MAX_MANIFEST_BYTES:
            raise _LoadFailed(f"manifest larger than {MAX_MANIFEST_BYTES} bytes")
        manifest_sha = hashlib.sha256(raw).hexdigest()
        try:
            manifest = Manifest.from_json(raw)
        except FormatError as exc:
            raise _LoadFailed(f"bad manifest: {exc}", manifest_sha256=manifest_sha) from exc
        if manifest.model != self.model_name:
            raise _LoadFailed(
                f"manifest is for model {manifest.model!r}, not {self.model_name!r}",
                manifest_sha256=manifest_sha,
            )
        if manifest.file(CONFIG_NAME) is None:
            raise _LoadFailed("manifest does not list config.json", manifest_sha256=manifest_sha)

        dest.mkdir(parents=True, exist_ok=True)
        (dest / MANIFEST_NAME).write_bytes(raw)
        checks = pull_verified(self.s3_client, self.bucket, self.prefix, dest, manifest)
        bad = [c for c in checks if not c.ok]
        if bad:
            shown = "; ".join(c.describe() for c in bad[:5])
            more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
            raise _LoadFailed(
                f"{len(bad)} of {len(checks)} files failed verification: {shown}{more}",
                checks,
                manifest_sha,
            )
        try:
            config = ModelConfig.load(dest / CONFIG_NAME)
            if config.name != self.model_name:
                raise FormatError(f"config is for model {config.name!r}")
            weights = load_weights(dest, config)
        except (FormatError, OSError) as exc:
            raise _LoadFailed(f"cannot load weights: {exc}", checks, manifest_sha) from exc
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
        with self._load_lock, self._lock:
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

    # -- request handling ------------------------------------------------

    def handle(self, method: str, path: str, body: bytes) -> Response:
        """Answer one request; returns (HTTP status, JSON object)."""
        parts = [unquote(p) for p in urlsplit(path).path.split("/") if p]
        try:
            return self._route(method, parts, body)
        except _BadRequest as exc:
            return 400, {"error": str(exc)}
        # The node must keep answering even if one request trips a bug.
        except Exception as exc:
            log.exception("request %s %s failed", method, path)
            return 500, {"error": describe_error(exc)}

    def _route(self, method: str, parts: list[str], body: bytes) -> Response:
        found = self._resolve(parts, body)
        if isinstance(found, tuple):
            return found
        handler = found.get(method)
        if handler is None:
            return 405, {"error": f"method {method} not allowed"}
        return handler()

    def _resolve(
        self, parts: list[str], body: bytes
    ) -> dict[str, Callable[[], Response]] | Response:
        """Map a path to its handlers by method, or to an immediate 404."""
        if parts == ["v2"]:
            return {"GET": self._server_metadata}
        if parts == ["v2", "health", "live"]:
            return {"GET": lambda: (200, {"live": True})}
        if parts == ["v2", "health", "ready"]:
            return {"GET": self._health_ready}
        if parts == ["v2", "node", "state"]:
            return {"GET": lambda: (200, self.snapshot())}
        if parts == ["v2", "repository", "index"]:
            return {"GET": self._repository_index, "POST": self._repository_index}
        adapter_routes = self._resolve_adapter(parts, body)
        if adapter_routes is not None:
            return adapter_routes
        if len(parts) in (3, 4) and parts[:2] == ["v2", "models"]:
            if parts[2] not in self._names:
                return 404, {"error": f"unknown model {parts[2]!r}"}
            rest = parts[3:]
            if not rest:
                return {"GET": self._model_metadata}
            if rest == ["ready"]:
                return {"GET": self._model_ready}
            if rest == ["infer"]:
                return {"POST": lambda: self._infer(body)}
        if len(parts) == 5 and parts[:3] == ["v2", "repository", "models"]:
            if parts[3] != self.model_name:
                return 404, {"error": f"unknown model {parts[3]!r}"}
            if parts[4] == "load":
                return {"POST": self._repository_load}
            if parts[4] == "unload":
                return {"POST": self._repository_unload}
        return 404, {"error": "not found"}

    # -- LoRA adapters (optional; absent unless a load request registers one) --------------

    def _resolve_adapter(
        self, parts: list[str], body: bytes
    ) -> dict[str, Callable[[], Response]] | Response | None:
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
        if not plus or base != self.model_name or not adapter:
            return None
        if rest == ["repository", "load"]:
            return {"POST": lambda: self._adapter_load(adapter, body)}
        slot = self._adapters.get(adapter)
        if slot is None:
            return 404, {"error": f"adapter {adapter!r} is not registered"}
        if rest == ["ready"] or not rest:
            ok = slot.loaded is not None and self.current() is not None
            return {"GET": lambda: (200 if ok else 503, {"name": name, "ready": ok,
                                                         "state": slot.state,
                                                         "error": slot.error})}
        if rest == ["infer"]:
            return {"POST": lambda: self._adapter_infer(name, slot, body)}
        if rest == ["repository", "unload"]:
            return {"POST": lambda: self._adapter_unload(adapter)}
        return 404, {"error": "not found"}

    def _adapter_load(self, adapter: str, body: bytes) -> Response:
        params = _parse_json_object(body or b"{}").get("parameters") or {}
        slot = self._adapters.get(adapter)
        prefix = params.get("adapter_prefix") if isinstance(params, dict) else None
        if slot is None or isinstance(prefix, str):
            if not isinstance(prefix, str) or not prefix:
                return 400, {"error": f"adapter {adapter!r} is new: give "
                                      "parameters.adapter_prefix"}
            slot = self._adapters.setdefault(adapter, _AdapterSlot(prefix))
            slot.prefix = prefix
        with self._load_lock:
            base = self.current()
            self._attempt += 1
            dest = self.cache_dir / f"adapter-{adapter}-{self._attempt:04d}"
            try:
                if base is None:
                    raise _LoadFailed("the base model is not loaded")
                loaded, checks = self._pull_adapter(slot.prefix, dest, base.config)
            except _LoadFailed as exc:
                shutil.rmtree(dest, ignore_errors=True)
                slot.loaded, slot.state, slot.error = None, STATE_FAILED, exc.message
                log.info("adapter=%s state -> failed error=%s", adapter, exc.message)
                return 502, {"error": exc.message, "state": STATE_FAILED,
                             "files": [f.to_dict() for f in exc.files]}
            slot.loaded, slot.state, slot.error = loaded, STATE_READY, None
            slot.merged = None
            log.info("adapter=%s state -> ready version=%s", adapter, loaded[1][:12])
            return 200, {"name": f"{self.model_name}+{adapter}", "state": STATE_READY,
                         "manifest_sha256": loaded[1], "files": [f.to_dict() for f in checks]}

    def _pull_adapter(
        self, prefix: str, dest: Path, base: ModelConfig
    ) -> tuple[tuple[Any, str], list[FileCheck]]:
        from lab.lora import load_adapter

        key = object_key(prefix, MANIFEST_NAME)
        try:
            response = self.s3_client.get_object(Bucket=self.bucket, Key=key)
            raw = cast(StreamingBodyLike, response["Body"]).read(MAX_MANIFEST_BYTES + 1)
        # Missing key, bad credentials, unreachable store: all mean "not loadable".
        except Exception as exc:
            raise _LoadFailed(f"cannot fetch s3://{self.bucket}/{key}: "
                              f"{describe_error(exc)}") from exc
        manifest_sha = hashlib.sha256(raw).hexdigest()
        try:
            manifest = Manifest.from_json(raw)
        except FormatError as exc:
            raise _LoadFailed(f"bad adapter manifest: {exc}") from exc
        checks = pull_verified(self.s3_client, self.bucket, prefix, dest, manifest)
        bad = [c for c in checks if not c.ok]
        if bad:
            raise _LoadFailed(f"{len(bad)} of {len(checks)} adapter files failed verification: "
                              + "; ".join(c.describe() for c in bad[:5]), checks)
        try:
            adapter = load_adapter(dest, base)
        except (FormatError, OSError) as exc:
            raise _LoadFailed(f"cannot load adapter: {exc}", checks) from exc
        return (adapter, manifest_sha), checks

    def _adapter_unload(self, adapter: str) -> Response:
        slot = self._adapters.pop(adapter, None)
        return 200, {"name": f"{self.model_name}+{adapter}", "state": STATE_UNLOADED,
                     "was_registered": slot is not None}

    def _adapter_infer(self, name: str, slot: _AdapterSlot, body: bytes) -> Response:
        from lab.lora import merge

        model = self.current()
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
        request = _parse_json_object(body)
        batch = _parse_infer_inputs(request, model.config.input_dim)
        with np.errstate(over="ignore", invalid="ignore"):
            outputs = forward(merged[1], model.config, batch)
        if not np.isfinite(outputs).all():
            raise _BadRequest("input values overflow the model (non-finite output)")
        return 200, {"model_name": name, "model_version": f"{model.version}+{adapter_sha[:12]}",
                     "outputs": [{"name": OUTPUT_NAME,
                                  "shape": [int(outputs.shape[0]), int(outputs.shape[1])],
                                  "datatype": "FP32", "data": outputs.ravel().tolist()}]}

    def _server_metadata(self) -> Response:
        return 200, {
            "name": "drillbook-node",
            "version": "1",
            "extensions": ["model_repository"],
        }

    def _not_ready_body(self) -> dict[str, Any]:
        with self._lock:
            return {"ready": False, "state": self._state, "error": self._error}

    def _health_ready(self) -> Response:
        if self.current() is not None:
            return 200, {"ready": True}
        return 503, self._not_ready_body()

    def _model_ready(self) -> Response:
        if self.current() is not None:
            return 200, {"name": self.model_name, "ready": True}
        return 503, {"name": self.model_name, **self._not_ready_body()}

    def _model_metadata(self) -> Response:
        model = self.current()
        if model is None:
            return 503, {"name": self.model_name, **self._not_ready_body()}
        return 200, {
            "name": self.model_name,
            "versions": [model.version],
            "platform": PLATFORM,
            "inputs": [
                {"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, model.config.input_dim]}
            ],
            "outputs": [
                {"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1, model.config.output_dim]}
            ],
        }

    def _repository_index(self) -> Response:
        model = self.current()
        with self._lock:
            state, error = self._state, self._error
        entry: dict[str, Any] = {"name": self.model_name, "state": state.upper()}
        if model is not None:
            entry["version"] = model.version
        if error:
            entry["reason"] = error
        # Triton answers the index with a bare list; the wrapper keeps every
        # response a JSON object, which the harness's client expects.
        return 200, {"models": [entry]}

    def _repository_load(self) -> Response:
        outcome = self.load()
        files = [f.to_dict() for f in outcome.files]
        if outcome.ok:
            return 200, {
                "name": self.model_name,
                "state": STATE_READY,
                "manifest_sha256": outcome.manifest_sha256,
                "files": files,
            }
        # 502: the node is fine, the store it depends on handed back bad data.
        return 502, {
            "error": outcome.error,
            "state": STATE_FAILED,
            "manifest_sha256": outcome.manifest_sha256,
            "files": files,
        }

    def _repository_unload(self) -> Response:
        self.unload()
        return 200, {"name": self.model_name, "state": STATE_UNLOADED}

    def _infer(self, body: bytes) -> Response:
        model = self.current()
        if model is None:
            return 503, {"error": "model not ready", **self._not_ready_body()}
        request = _parse_json_object(body)
        batch = _parse_infer_inputs(request, model.config.input_dim)
        # Huge-but-finite inputs can overflow inside the first matmul; that is the
        # caller's problem (400), not a server warning or a NaN in the JSON.
        outputs = self._run_on_device(model, batch)
        if not np.isfinite(outputs).all():
            raise _BadRequest("input values overflow the model (non-finite output)")
        response: dict[str, Any] = {
            "model_name": self.model_name,
            "model_version": model.version,
            "outputs": [
                {
                    "name": OUTPUT_NAME,
                    "shape": [int(outputs.shape[0]), int(outputs.shape[1])],
                    "datatype": "FP32",
                    # float32 -> Python float is exact and JSON keeps the repr.
                    "data": outputs.ravel().tolist(),
                }
            ],
        }
        if "id" in request:
            response["id"] = request["id"]
        return 200, response


def _parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise _BadRequest("body must be a JSON object")
    return value


def _flatten_numbers(data: Any, out: list[float]) -> None:
    if isinstance(data, list):
        for item in data:
            _flatten_numbers(item, out)
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        out.append(float(data))
    else:
        raise _BadRequest(f"data must contain only numbers, got {type(data).__name__}")


def _parse_infer_inputs(request: Mapping[str, Any], input_dim: int) -> FloatArray:
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise _BadRequest("'inputs' must be a list with exactly one tensor object")
    tensor = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise _BadRequest(f"input tensor must be named {INPUT_NAME!r}")
    if tensor.get("datatype") != "FP32":
        raise _BadRequest("input datatype must be 'FP32'")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        or shape[0] < 1
        or shape[1] != input_dim
    ):
        raise _BadRequest(f"input shape must be [n, {input_dim}] with n >= 1, got {shape!r}")
    flat: list[float] = []
    _flatten_numbers(tensor.get("data"), flat)
    if len(flat) != shape[0] * shape[1]:
        raise _BadRequest(f"data has {len(flat)} values, shape {shape} needs {shape[0] * shape[1]}")
    if not all(math.isfinite(v) and abs(v) <= _FLOAT32_MAX for v in flat):
        raise _BadRequest("data must be finite and within float32 range")
    arr: FloatArray = np.array(flat, dtype=np.float32).reshape(shape[0], shape[1])
    return arr


class NodeHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the NodeService its handlers talk to."""

    daemon_threads = True
    # the default backlog of 5 resets connections when a load test opens many at once
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: NodeService) -> None:
        self.service = service
        super().__init__(address, _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server_version = "drillbook-node/1"
    protocol_version = "HTTP/1.1"
    # headers and body go out in separate writes: with Nagle on, every request after the first
    # on a kept-alive connection waited ~40 ms for the delayed ACK
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        service = cast(NodeHTTPServer, self.server).service
        raw_length = self.headers.get("Content-Length", "0")
        try:
            length = int(raw_length)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            # The unread body would be parsed as the next request; drop the connection.
            self.close_connection = True
            status, payload = (
                (413, {"error": "body too large"})
                if length > MAX_BODY_BYTES
                else (400, {"error": "bad Content-Length"})
            )
        else:
            body = self.rfile.read(length) if length else b""
            status, payload = service.handle(method, self.path, body)
        data = json.dumps(payload, allow_nan=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # Access lines would drown the one-line-per-state-change log.
        log.debug("%s " + format, self.address_string(), *args)


def make_server(service: NodeService, host: str = "127.0.0.1", port: int = 0) -> NodeHTTPServer:
    """Bind the HTTP API (port 0 picks a free port; see ``server.port``)."""
    return NodeHTTPServer((host, port), service)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m lab.node", description=__doc__.split("\n")[0])
    parser.add_argument("--endpoint", required=True, help="S3 endpoint URL")
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", default="", help="key prefix of the model, e.g. models/m1/")
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--port", type=int, required=True, help="HTTP port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--region", default="default")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--serve-as", default=None,
                        help="another name the model answers to under /v2/models/{name}")
    parser.add_argument("--device-ms", type=float, default=0.0,
                        help="stand-in accelerator time per batch, in ms (0 = none)")
    parser.add_argument("--device-slots", type=int, default=1,
                        help="batches the stand-in accelerator runs at once")
    parser.add_argument("--warmup", type=int, default=0,
                        help="forward passes to run before reporting ready")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s lab.node %(message)s",
    )
    # boto's INFO chatter ("Found credentials ...") is not a node state change.
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.cache_dir is not None:
        cache_dir, owned = Path(args.cache_dir), False
        cache_dir.mkdir(parents=True, exist_ok=True)
    else:
        cache_dir, owned = Path(tempfile.mkdtemp(prefix="drillbook-node-")), True
    service = NodeService(
        s3_client=make_s3_client(args.endpoint, args.region),
        bucket=args.bucket,
        prefix=args.prefix,
        model_name=args.model_name,
        cache_dir=cache_dir,
        owns_cache_dir=owned,
        serve_as=args.serve_as,
        device_ms=args.device_ms,
        device_slots=args.device_slots,
        warmup=args.warmup,
    )
    try:
        server = make_server(service, args.host, args.port)
    except OSError as exc:
        log.error("cannot bind %s:%s: %s", args.host, args.port, exc)
        service.close()
        return 2

    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s received, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    serving = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="node-http", daemon=True
    )
    serving.start()
    log.info(
        "model=%s listening on http://%s:%d store=%s bucket=%s prefix=%s",
        args.model_name,
        args.host,
        server.port,
        args.endpoint,
        args.bucket,
        args.prefix,
    )
    service.start()
    # Short waits keep the main thread responsive to signals.
    while not stop.wait(0.5):
        pass
    server.shutdown()
    server.server_close()
    serving.join(timeout=5)
    service.close()
    log.info("model=%s stopped", args.model_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
