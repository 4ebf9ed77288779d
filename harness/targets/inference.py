"""The inference endpoint adapter: KServe v2 / Open Inference Protocol over HTTP.

Used to record golden outputs before a fault, to redeploy (the model-repository ``load`` call that
Triton and KServe runtimes answer) and to smoke-test after recovery. Connection failures become
:class:`~harness.errors.TargetUnreachable`.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from harness.errors import TargetUnreachable
from harness.inventory import InferenceTarget


@dataclass(frozen=True)
class Readiness:
    ready: bool
    status: int
    detail: str


class InferenceEndpoint:
    def __init__(self, target: InferenceTarget, *, timeout_s: float = 30.0) -> None:
        self.target = target
        self.timeout_s = timeout_s

    def _request(self, method: str, path: str, body: Any = None,
                 timeout_s: float | None = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.target.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout_s or self.timeout_s) as resp:
                return resp.status, _json(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _json(exc.read())
        except (urllib.error.URLError, OSError) as exc:
            raise TargetUnreachable(
                f"inference endpoint {self.target.name} ({self.target.url}) unreachable: "
                f"{getattr(exc, 'reason', exc)}") from exc

    def readiness(self) -> Readiness:
        status, body = self._request("GET", "/v2/health/ready", timeout_s=5)
        detail = ""
        if isinstance(body, dict):
            detail = str(body.get("error") or body.get("state") or "")
        return Readiness(status == 200, status, detail)

    def wait_ready(self, timeout_s: float, interval_s: float = 0.2) -> Readiness:
        """Poll readiness until ready or a bound; a node that reports a failed load stops the wait."""
        deadline = time.monotonic() + timeout_s
        last = Readiness(False, 0, "never answered")
        while time.monotonic() < deadline:
            try:
                last = self.readiness()
            except TargetUnreachable as exc:
                last = Readiness(False, 0, str(exc))
            if last.ready or "failed" in last.detail or _is_failed(last):
                return last
            time.sleep(interval_s)
        return last

    def infer(self, inputs: list[list[float]]) -> list[list[float]]:
        n = len(inputs)
        dim = len(inputs[0]) if n else 0
        payload = {"inputs": [{"name": "input", "shape": [n, dim], "datatype": "FP32",
                               "data": [x for row in inputs for x in row]}]}
        status, body = self._request("POST", f"/v2/models/{self.target.model}/infer", payload)
        if status != 200 or not isinstance(body, dict):
            raise TargetUnreachable(f"infer answered HTTP {status}: {_error_text(body)}")
        out = body["outputs"][0]
        rows, cols = out["shape"]
        flat = [float(x) for x in out["data"]]
        return [flat[i * cols:(i + 1) * cols] for i in range(rows)]

    def load(self, timeout_s: float) -> tuple[bool, str]:
        """Ask the server to (re)load the model from the store; (ok, message)."""
        status, body = self._request("POST", f"/v2/repository/models/{self.target.model}/load",
                                     {}, timeout_s=timeout_s)
        return status == 200, _error_text(body) if status != 200 else "loaded"

    def node_state(self) -> dict[str, Any]:
        status, body = self._request("GET", "/v2/node/state", timeout_s=5)
        return body if status == 200 and isinstance(body, dict) else {}


def _is_failed(r: Readiness) -> bool:
    return r.status == 503 and r.detail not in ("", "loading")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return raw.decode(errors="replace")


def _error_text(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("error", body))
    return str(body)[:300]
