"""An in-memory inference node.

:class:`~harness.targets.protocols.ServingEndpoint` is the part of
:class:`harness.targets.inference.InferenceEndpoint` that scenarios and the serving steps call. :class:`FakeEndpoint` behaves like the lab's node: ``load``
reads the asset's manifest and every file it lists from a store, checks each SHA-256, and serves
only what verified; its answers are a deterministic function of the loaded bytes, so a model
restored one bit wrong answers differently, and a corrupt checkpoint published with a matching
manifest loads and serves wrong answers without an error (the silent corruption case).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from harness.errors import TargetUnreachable
from harness.integrity import Manifest
from harness.inventory import InferenceTarget
from harness.targets.inference import Readiness
from harness.targets.protocols import ObjectStore, Rows


class FakeEndpoint:
    """A node serving the model described by ``manifest_key`` in ``bucket`` (files under the
    manifest's directory). ``advance(seconds)`` is called for each load: hand in a ManualClock's
    ``advance`` so a redeploy takes measurable time. ``unreachable`` makes every call raise."""

    def __init__(self, target: InferenceTarget, store: ObjectStore, bucket: str,
                 manifest_key: str, *, load_s: float = 0.0,
                 advance: Callable[[float], None] | None = None) -> None:
        self.target = target
        self.store = store
        self.bucket = bucket
        self.manifest_key = manifest_key
        self.prefix = manifest_key.rpartition("/")[0] + "/" if "/" in manifest_key else ""
        self.load_s = load_s
        self.advance = advance
        self.unreachable = False
        self.loads = 0
        #: called with the files of each load that verified (path in the manifest -> bytes): a
        #: test's stand-in for the node writing its pull into a cache (see harness/fakes/host.py)
        self.pulled: Callable[[dict[str, bytes]], None] | None = None
        self._weights: str | None = None  # digest of what was loaded
        self._state = "unloaded"

    def _reach(self) -> None:
        if self.unreachable:
            raise TargetUnreachable(f"inference endpoint {self.target.name} ({self.target.url}) "
                                    f"unreachable: connection refused")

    def readiness(self) -> Readiness:
        self._reach()
        ready = self._weights is not None and self._state == "ready"
        return Readiness(ready, 200 if ready else 503, "" if ready else self._state)

    def wait_ready(self, timeout_s: float, interval_s: float = 0.2) -> Readiness:
        # loads here finish inside load(): there is nothing to wait for
        try:
            return self.readiness()
        except TargetUnreachable as exc:
            return Readiness(False, 0, str(exc))

    def infer(self, inputs: Rows) -> Rows:
        self._reach()
        if self._weights is None or self._state != "ready":
            raise TargetUnreachable(f"infer answered HTTP 503: {self._state}")
        w = int(self._weights[:8], 16) / 2**32
        return [[float(sum(row)) + w, float(len(row)) * w] for row in inputs]

    def load(self, timeout_s: float) -> tuple[bool, str]:
        """Pull the manifest and its files, verify each, serve them; a failed load leaves the
        node not ready, as the lab's node is after it refuses a checkpoint."""
        self._reach()
        self.loads += 1
        if self.advance is not None and self.load_s:
            self.advance(self.load_s)
        raw = self.store.read_bytes(self.bucket, self.manifest_key)
        if raw is None:
            return self._failed(f"no manifest at s3://{self.bucket}/{self.manifest_key}")
        try:
            manifest = Manifest.from_bytes(raw)
        except ValueError as exc:
            return self._failed(str(exc))
        digest = hashlib.sha256(raw)
        files: dict[str, bytes] = {}
        for f in manifest.files:
            data = self.store.read_bytes(self.bucket, self.prefix + f.path)
            if data is None:
                return self._failed(f"{f.path} is missing from the store")
            if hashlib.sha256(data).hexdigest() != f.sha256:
                return self._failed(f"sha256 mismatch for {f.path}")
            digest.update(data)
            files[f.path] = data
        if self.pulled is not None:
            self.pulled(files)
        self._weights, self._state = digest.hexdigest(), "ready"
        return True, "loaded"

    def _failed(self, why: str) -> tuple[bool, str]:
        self._weights, self._state = None, f"failed: {why}"
        return False, why

    def node_state(self) -> dict[str, Any]:
        self._reach()
        return {"state": self._state, "weights": self._weights, "loads": self.loads}
