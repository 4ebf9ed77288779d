"""The node's in-memory pull (lab.node_fetch) and its safetensors views (lab.node_weights).

Lab-free and fast: a fake range source over bytes in memory that answers ranges in a shuffled
order, and a loopback HTTP server for the presigned-URL transport.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import random
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from lab import netconfig, netweights
from lab import netmodel as nm
from lab.netmanifest import FormatError, ManifestFile
from lab.node_fetch import PresignedSource, RangeFailed, fetch_verified
from lab.node_weights import weights_from_buffers


class MemorySource:
    """Objects in a dict; each range is held until the test lets ranges go in an order it
    chooses, so the in-order hash is exercised with ranges landing out of order."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.asked: list[tuple[str, int, int]] = []
        self.lock = threading.Lock()

    def fetch(self, key: str, start: int, into: memoryview) -> int:
        with self.lock:
            self.asked.append((key, start, len(into)))
        data = self.objects.get(key)
        if data is None:
            raise RangeFailed("NoSuchKey: The specified key does not exist.")
        if start >= len(data) and len(into):
            raise RangeFailed("InvalidRange", actual_size=len(data))
        chunk = data[start:start + len(into)]
        into[:len(chunk)] = chunk
        if len(chunk) != len(into):
            raise RangeFailed("short", actual_size=len(data))
        return len(data)

    def close(self) -> None:
        pass


def _entry(path: str, data: bytes) -> ManifestFile:
    return ManifestFile(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest())


def test_every_byte_is_fetched_once_and_hashed_in_order_whatever_order_ranges_land() -> None:
    rng = random.Random(7)
    objects = {f"p/f{i}": rng.randbytes(rng.randrange(1, 5000)) for i in range(5)}
    objects["p/empty"] = b""
    entries = tuple(_entry(k.removeprefix("p/"), v) for k, v in objects.items())
    source = MemorySource(objects)
    checks, data = fetch_verified(source, "p/", entries, threads=6, range_bytes=97)
    assert [c.path for c in checks] == [e.path for e in entries]
    assert all(c.ok and c.actual_sha256 == c.expected_sha256 for c in checks)
    for e in entries:
        assert data[e.path].tobytes() == objects["p/" + e.path]
        assert not data[e.path].flags.writeable  # served as hashed
        asked = sorted((s, n) for k, s, n in source.asked if k == "p/" + e.path)
        assert sum(n for _, n in asked) == e.size  # each byte asked for once
    assert ("p/empty", 0, 0) in source.asked  # an empty object is still asked for


def test_damaged_missing_and_resized_objects_are_each_reported() -> None:
    good = b"a" * 1000
    objects = {"p/flipped": b"b" * 999 + b"c", "p/short": good[:-10], "p/long": good + b"x",
               "p/ok": good}
    entries = (_entry("flipped", b"b" * 1000), _entry("short", good), _entry("long", good),
               _entry("missing", good), _entry("ok", good))
    checks = {c.path: c for c in fetch_verified(MemorySource(objects), "p/", entries,
                                                 threads=3, range_bytes=64)[0]}
    flipped = checks["flipped"]
    assert not flipped.ok and flipped.size_ok and flipped.actual_sha256 not in (None,
                                                                                 flipped.expected_sha256)
    for name, size in (("short", 990), ("long", 1001)):
        assert not checks[name].ok and not checks[name].size_ok
        assert checks[name].actual_size == size
        assert checks[name].error == f"size {size} != expected 1000"
    missing = checks["missing"]
    assert not missing.ok and missing.actual_sha256 is None and "NoSuchKey" in str(missing.error)
    assert checks["ok"].ok


def test_a_path_that_escapes_is_refused_without_a_request() -> None:
    source = MemorySource({})
    (check,), data = fetch_verified(source, "p/", (ManifestFile("../x", 1, "0" * 64),))
    assert not check.ok and check.error and data == {} and source.asked == []


# -- the presigned transport against a loopback HTTP server ------------------------------------


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    objects: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        data = self.objects.get(self.path.split("?")[0])
        if data is None:
            body = b"<Error><Code>NoSuchKey</Code></Error>"
            self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        first, last = (int(x) for x in self.headers["Range"].removeprefix("bytes=").split("-"))
        chunk = data[first:last + 1]
        self.send_response(206)
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("Content-Range", f"bytes {first}-{first + len(chunk) - 1}/{len(data)}")
        self.end_headers()
        self.wfile.write(chunk)

    def log_message(self, *args: Any) -> None:
        pass


class _Presigner:
    def __init__(self, port: int) -> None:
        self.port = port

    def generate_presigned_url(self, op: str, Params: dict[str, str], ExpiresIn: int) -> str:
        return f"http://127.0.0.1:{self.port}/{Params['Bucket']}/{Params['Key']}?X-Sig=1"


@pytest.fixture
def http_store() -> Iterator[tuple[_Presigner, dict[str, bytes]]]:
    objects: ClassVar[dict[str, bytes]] = {}
    handler = type("Handler", (_RangeHandler,), {"objects": objects,
                                                 "protocol_version": "HTTP/1.1"})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    try:
        yield _Presigner(server.server_address[1]), objects
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_presigned_ranges_land_in_the_buffer_over_kept_alive_connections(
        http_store: tuple[_Presigner, dict[str, bytes]]) -> None:
    presigner, objects = http_store
    objects["/b/m/w"] = bytes(range(256)) * 40
    source = PresignedSource(presigner, "b")
    checks, data = fetch_verified(source, "m/", (_entry("w", objects["/b/m/w"]),), threads=2,
                                  range_bytes=1000)
    assert checks[0].ok and data["w"].tobytes() == objects["/b/m/w"]
    (missing,), _ = fetch_verified(source, "m/", (_entry("gone", b"x"),))
    assert not missing.ok and str(missing.error).startswith("NoSuchKey")


# -- safetensors from the verified bytes ---------------------------------------------------------


def _safetensors(tensors: dict[str, tuple[list[int], list[int]]], payload: bytes) -> bytes:
    header = json.dumps({k: {"dtype": "F32", "shape": s, "data_offsets": o}
                         for k, (s, o) in tensors.items()}).encode()
    return struct.pack("<Q", len(header)) + header + payload


def test_weights_are_views_of_the_verified_bytes_and_equal_the_files(tmp_path: Path) -> None:
    nm.generate_model(tmp_path, name="m", seed=3)
    config = netconfig.ModelConfig.load(tmp_path / netconfig.CONFIG_NAME)
    files = {p.name: np.frombuffer(p.read_bytes(), dtype=np.uint8)
             for p in tmp_path.glob("model-*.safetensors")}
    got = weights_from_buffers(files, config)
    want = netweights.load_weights(tmp_path, config)
    assert set(got) == set(want)
    for name, arr in got.items():
        assert arr.dtype == np.float32 and not arr.flags.writeable
        assert np.array_equal(arr, want[name])
        assert any(np.shares_memory(arr, buf) for buf in files.values())  # not a copy


@pytest.mark.parametrize(("layout", "fragment"), [
    ({"w": ([2], [0, 8]), "b": ([1], [4, 8])}, "overlap or hole"),
    ({"w": ([2], [0, 8])}, "cover 8 of 12"),
    ({"w": ([3], [0, 8])}, "do not hold 3 float32"),
    ({"w": ([2], [0, 16])}, "inside the data"),
])
def test_a_malformed_layout_is_refused(layout: dict[str, tuple[list[int], list[int]]],
                                       fragment: str) -> None:
    raw = _safetensors(layout, bytes(12))
    with pytest.raises(FormatError, match=fragment):
        weights_from_buffers({"model-00001-of-00001.safetensors":
                              np.frombuffer(raw, dtype=np.uint8)}, _config())


def _config() -> netconfig.ModelConfig:
    return netconfig.build_config(name="m", seed=1, hidden_dim=4, n_hidden=1, input_dim=2,
                                  output_dim=2)


def test_a_wrong_dtype_or_a_bad_header_is_refused() -> None:
    name = "model-00001-of-00001.safetensors"
    header = json.dumps({"w": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}).encode()
    f16 = struct.pack("<Q", len(header)) + header + bytes(4)
    with pytest.raises(FormatError, match="F16"):
        weights_from_buffers({name: np.frombuffer(f16, dtype=np.uint8)}, _config())
    with pytest.raises(FormatError, match="does not fit"):
        weights_from_buffers({name: np.frombuffer(struct.pack("<Q", 99) + b"{}",
                                                  dtype=np.uint8)}, _config())
    with pytest.raises(FormatError, match="incomplete or mixed"):
        weights_from_buffers({"model-00001-of-00002.safetensors":
                              np.frombuffer(f16, dtype=np.uint8)}, _config())
