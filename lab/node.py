"""The lab's stand-in for a GPU inference node.

A recovery drill needs something that behaves like a real serving node: it
pulls model weights from the object store at start-up, refuses to serve
unless every byte matches the manifest, and answers the KServe v2 / Open
Inference Protocol so the harness can probe liveness, readiness and actual
inference results (compared bit-for-bit with golden outputs). Reloading via
the Triton model-repository extension re-pulls from the store, which is how
the harness proves that a restored store really serves the original model.

This module maps the protocol's paths onto the model lifecycle
(:mod:`lab.node_runtime`) and starts the process; pulling and verifying is in
:mod:`lab.node_pull`, request bodies and the HTTP server in :mod:`lab.node_http`,
LoRA adapters in :mod:`lab.node_lora`.

Run as::

    python -m lab.node --endpoint http://127.0.0.1:PORT --bucket B --prefix P/ \\
        --model-name NAME --port N [--region default] [--cache-dir DIR]

S3 credentials come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import unquote, urlsplit

from lab.node_http import (
    INPUT_NAME,
    OUTPUT_NAME,
    BadRequest,
    Response,
    Routes,
    make_server,
    output_tensors,
    parse_infer_inputs,
    parse_json_object,
)
from lab.node_lora import Adapters
from lab.node_pull import S3Like, describe_error, make_s3_client
from lab.node_runtime import STATE_FAILED, STATE_READY, STATE_UNLOADED, ModelRuntime

log = logging.getLogger("lab.node")

PLATFORM = "drillbook-mlp"


class NodeService(ModelRuntime):
    """The node's KServe v2 API over its model lifecycle, independent of HTTP transport.

    The lifecycle (states, reload and swap) is :class:`lab.node_runtime.ModelRuntime`'s.
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
        super().__init__(
            s3_client=s3_client,
            bucket=bucket,
            prefix=prefix,
            model_name=model_name,
            cache_dir=cache_dir,
            owns_cache_dir=owns_cache_dir,
            device_ms=device_ms,
            device_slots=device_slots,
            warmup=warmup,
        )
        # The name the model also answers to: a fallback pool serving a smaller model under the
        # service's name (a fleet extension, off by default).
        self._names = {model_name} | ({serve_as} if serve_as else set())
        # LoRA adapters served as "<model>+<adapter>", registered by a load request
        self._adapters = Adapters(self)

    # -- request handling ------------------------------------------------

    def handle(self, method: str, path: str, body: bytes) -> Response:
        """Answer one request; returns (HTTP status, JSON object)."""
        parts = [unquote(p) for p in urlsplit(path).path.split("/") if p]
        try:
            return self._route(method, parts, body)
        except BadRequest as exc:
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

    def _resolve(self, parts: list[str], body: bytes) -> Routes | Response:
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
        adapter_routes = self._adapters.resolve(parts, body)
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

    def _server_metadata(self) -> Response:
        return 200, {
            "name": "drillbook-node",
            "version": "1",
            "extensions": ["model_repository"],
        }

    def _not_ready_body(self) -> dict[str, Any]:
        state, error = self.state_and_error()
        return {"ready": False, "state": state, "error": error}

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
        state, error = self.state_and_error()
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
        request = parse_json_object(body)
        batch = parse_infer_inputs(request, model.config.input_dim)
        outputs = self._run_on_device(model, batch)
        response: dict[str, Any] = {
            "model_name": self.model_name,
            "model_version": model.version,
            "outputs": output_tensors(outputs),
        }
        if "id" in request:
            response["id"] = request["id"]
        return 200, response


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
