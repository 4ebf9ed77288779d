"""The inference node's wire layer: KServe v2 request bodies and the HTTP server.

Everything a client can send wrong is caught here and turned into a 400
(``BadRequest``) before any model code runs; the server itself only frames
requests and responses, and hands (method, path, body) to whatever object
answers them (:class:`lab.node.NodeService`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol, cast

import numpy as np

from lab.netweights import FloatArray

# one logger for every part of the node process, as before the split into modules
log = logging.getLogger("lab.node")

INPUT_NAME = "input"
OUTPUT_NAME = "output"
MAX_BODY_BYTES = 64 * 1024 * 1024
_FLOAT32_MAX = float(np.finfo(np.float32).max)

Response = tuple[int, dict[str, Any]]
#: handlers of one path, by HTTP method
Routes = dict[str, Callable[[], Response]]


class BadRequest(Exception):
    """The client sent something the protocol does not allow (answered with 400)."""


class Service(Protocol):
    """What the server hands each request to."""

    def handle(self, method: str, path: str, body: bytes) -> Response: ...


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"body is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise BadRequest("body must be a JSON object")
    return value


def _flatten_numbers(data: Any, out: list[float]) -> None:
    if isinstance(data, list):
        for item in data:
            _flatten_numbers(item, out)
    elif isinstance(data, (int, float)) and not isinstance(data, bool):
        out.append(float(data))
    else:
        raise BadRequest(f"data must contain only numbers, got {type(data).__name__}")


def parse_infer_inputs(request: Mapping[str, Any], input_dim: int) -> FloatArray:
    inputs = request.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise BadRequest("'inputs' must be a list with exactly one tensor object")
    tensor = inputs[0]
    if tensor.get("name") != INPUT_NAME:
        raise BadRequest(f"input tensor must be named {INPUT_NAME!r}")
    if tensor.get("datatype") != "FP32":
        raise BadRequest("input datatype must be 'FP32'")
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) != 2
        or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
        or shape[0] < 1
        or shape[1] != input_dim
    ):
        raise BadRequest(f"input shape must be [n, {input_dim}] with n >= 1, got {shape!r}")
    flat: list[float] = []
    _flatten_numbers(tensor.get("data"), flat)
    if len(flat) != shape[0] * shape[1]:
        raise BadRequest(f"data has {len(flat)} values, shape {shape} needs {shape[0] * shape[1]}")
    if not all(math.isfinite(v) and abs(v) <= _FLOAT32_MAX for v in flat):
        raise BadRequest("data must be finite and within float32 range")
    arr: FloatArray = np.array(flat, dtype=np.float32).reshape(shape[0], shape[1])
    return arr


def output_tensors(outputs: FloatArray) -> list[dict[str, Any]]:
    """The v2 ``outputs`` list of one inference result.

    Huge-but-finite inputs can overflow inside the first matmul; that is the
    caller's problem (400), not a server warning or a NaN in the JSON.
    """
    if not np.isfinite(outputs).all():
        raise BadRequest("input values overflow the model (non-finite output)")
    return [
        {
            "name": OUTPUT_NAME,
            "shape": [int(outputs.shape[0]), int(outputs.shape[1])],
            "datatype": "FP32",
            # float32 -> Python float is exact and JSON keeps the repr.
            "data": outputs.ravel().tolist(),
        }
    ]


class NodeHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the service its handlers talk to."""

    daemon_threads = True
    # the default backlog of 5 resets connections when a load test opens many at once
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], service: Service) -> None:
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


def make_server(service: Service, host: str = "127.0.0.1", port: int = 0) -> NodeHTTPServer:
    """Bind the HTTP API (port 0 picks a free port; see ``server.port``)."""
    return NodeHTTPServer((host, port), service)
