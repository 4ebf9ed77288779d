"""Unit tests for lab.node: pull/verify logic and the HTTP API, with a local fake S3 client.

The fake implements only ``get_object`` over files on disk; it stands in for
the object store so that our own verification and state logic can be tested
without any server. Real-S3 behaviour is covered by the lab integration tests.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError

from lab import netconfig, netmanifest, node, node_http, node_pull, node_runtime
from lab import netmodel as nm

MODEL = "mlp-node"
BUCKET = "models"
PREFIX = "mlp-node/v1/"
REPO_ROOT = Path(__file__).resolve().parents[1]


class FakeBody:
    """Streams a local file (or bytes ``[start, end)`` of it) like botocore's StreamingBody,
    recording each read size."""

    def __init__(self, path: Path, reads: list[int | None], served: list[int],
                 start: int = 0, end: int | None = None) -> None:
        self._fh = path.open("rb")
        self._fh.seek(start)
        self._left = (path.stat().st_size if end is None else end) - start
        self._reads = reads
        self._served = served

    def read(self, amt: int | None = None) -> bytes:
        self._reads.append(amt)
        want = self._left if amt is None else min(amt, self._left)
        data = self._fh.read(want)
        self._left -= len(data)
        self._served[0] += len(data)
        return data

    def close(self) -> None:
        self._fh.close()


class FakeS3:
    """Minimal get_object over ``root/<bucket>/<key>``; optionally blocks until released."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.gate: threading.Event | None = None
        self.waiting = threading.Event()
        self.reads: dict[str, list[int | None]] = {}
        self.served: dict[str, list[int]] = {}
        self.calls: list[str] = []

    def get_object(self, *, Bucket: str, Key: str, Range: str | None = None) -> dict[str, Any]:
        self.calls.append(Key)
        if self.gate is not None:
            self.waiting.set()
            assert self.gate.wait(30), "test never released the fake store"
        path = self.root / Bucket / Key
        if not path.is_file():
            raise ClientError(
                {"Error": {"Code": "NoSuchKey", "Message": "The specified key does not exist."}},
                "GetObject",
            )
        reads = self.reads.setdefault(Key, [])
        served = self.served.setdefault(Key, [0])
        size = path.stat().st_size
        if Range is None:
            return {"Body": FakeBody(path, reads, served), "ContentLength": size}
        m = re.fullmatch(r"bytes=(\d+)-(\d+)", Range)
        assert m, Range
        start, last = int(m.group(1)), int(m.group(2))
        if start >= size:  # as S3 answers a range past the end: 416 with the real size
            raise ClientError(
                {"Error": {"Code": "InvalidRange", "Message": "The requested range is not "
                           "satisfiable"},
                 "ResponseMetadata": {"HTTPHeaders": {"content-range": f"bytes */{size}"}}},
                "GetObject",
            )
        end = min(size, last + 1)
        return {"Body": FakeBody(path, reads, served, start, end), "ContentLength": end - start,
                "ContentRange": f"bytes {start}-{end - 1}/{size}"}


@pytest.fixture(scope="module")
def model_src(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A generated model directory and the golden file computed from it."""
    src = tmp_path_factory.mktemp("model")
    nm.generate_model(src, name=MODEL, seed=21)
    config = netconfig.ModelConfig.load(src / netconfig.CONFIG_NAME)
    golden_dir = tmp_path_factory.mktemp("golden")
    return src, nm.write_golden(golden_dir, config, src, count=4)


@pytest.fixture
def store(tmp_path: Path, model_src: tuple[Path, Path]) -> FakeS3:
    src, _ = model_src
    shutil.copytree(src, tmp_path / "s3" / BUCKET / PREFIX.rstrip("/"))
    return FakeS3(tmp_path / "s3")


def _store_dir(fake: FakeS3) -> Path:
    return fake.root / BUCKET / PREFIX.rstrip("/")


@pytest.fixture
def service(store: FakeS3, tmp_path: Path) -> Iterator[node.NodeService]:
    svc = node.NodeService(
        s3_client=store,
        bucket=BUCKET,
        prefix=PREFIX,
        model_name=MODEL,
        cache_dir=tmp_path / "cache",
        owns_cache_dir=True,
    )
    yield svc
    if store.gate is not None:
        store.gate.set()
    loader = svc._loader
    if loader is not None:
        loader.join(30)
    svc.close()


def _infer_body(rows: list[list[float]]) -> bytes:
    flat = [v for row in rows for v in row]
    tensor = {"name": "input", "shape": [len(rows), len(rows[0])], "datatype": "FP32", "data": flat}
    return json.dumps({"id": "req-1", "inputs": [tensor]}).encode()


def _golden(model_src: tuple[Path, Path]) -> dict[str, Any]:
    return json.loads(model_src[1].read_text())


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


# -- pull_verified ------------------------------------------------------------


def test_pull_verified_ok_streams_each_object_once(store: FakeS3, tmp_path: Path) -> None:
    manifest = netmanifest.Manifest.load(_store_dir(store) / netmanifest.MANIFEST_NAME)
    dest = tmp_path / "dest"
    checks = node_pull.pull_verified(store, BUCKET, PREFIX, dest, manifest)
    assert [c.path for c in checks] == [f.path for f in manifest.files]
    assert all(c.ok and c.size_ok and c.actual_sha256 == c.expected_sha256 for c in checks)
    for entry in manifest.files:
        key = PREFIX + entry.path
        assert store.calls.count(key) == 1
        assert store.served[key][0] == entry.size
        assert all(amt is not None and amt <= 8 * 1024 * 1024 for amt in store.reads[key])
        assert netmanifest.file_sha256(dest / entry.path) == entry.sha256
    assert netmanifest.verify_dir(dest, manifest) == []


def test_pull_verified_reports_every_bad_file(store: FakeS3, tmp_path: Path) -> None:
    manifest = netmanifest.Manifest.load(_store_dir(store) / netmanifest.MANIFEST_NAME)
    shard1, shard2 = (f.path for f in manifest.files[1:3])
    _corrupt(_store_dir(store) / shard1)
    (_store_dir(store) / shard2).unlink()
    config_path = _store_dir(store) / netconfig.CONFIG_NAME
    config_path.write_bytes(config_path.read_bytes()[:-10])
    checks = {c.path: c for c in node_pull.pull_verified(store, BUCKET, PREFIX, tmp_path, manifest)}

    flipped = checks[shard1]
    assert flipped.size_ok and not flipped.ok
    assert flipped.actual_sha256 is not None and flipped.actual_sha256 != flipped.expected_sha256
    missing = checks[shard2]
    assert not missing.ok and missing.actual_sha256 is None and not missing.size_ok
    assert missing.error is not None and "NoSuchKey" in missing.error
    assert not (tmp_path / shard2).exists()
    short = checks[netconfig.CONFIG_NAME]
    assert not short.ok and not short.size_ok and short.actual_size == short.expected_size - 10


def test_pull_verified_refuses_path_traversal(store: FakeS3, tmp_path: Path) -> None:
    evil = netmanifest.Manifest(
        model=MODEL,
        files=(netmanifest.ManifestFile(path="../outside", size=1, sha256="0" * 64),),
        created_utc="2024-01-01T00:00:00Z",
    )
    dest = tmp_path / "dest"
    (check,) = node_pull.pull_verified(store, BUCKET, PREFIX, dest, evil)
    assert not check.ok and check.error is not None
    assert not (tmp_path / "outside").exists()
    assert store.calls == []


def test_object_key_joins_prefix() -> None:
    assert node_pull.object_key("a/b/", "x.json") == "a/b/x.json"
    assert node_pull.object_key("a/b", "x.json") == "a/b/x.json"
    assert node_pull.object_key("", "x.json") == "x.json"


# -- service logic --------------------------------------------------------------


def test_load_then_serve_golden_exactly(
    service: node.NodeService, model_src: tuple[Path, Path]
) -> None:
    assert service.handle("GET", "/v2/health/ready", b"")[0] == 503
    outcome = service.load()
    assert outcome.ok, outcome.error
    assert service.handle("GET", "/v2/health/ready", b"") == (200, {"ready": True})
    assert service.handle("GET", f"/v2/models/{MODEL}/ready", b"")[0] == 200

    golden = _golden(model_src)
    status, body = service.handle(
        "POST", f"/v2/models/{MODEL}/infer", _infer_body(golden["inputs"])
    )
    assert status == 200, body
    assert body["model_name"] == MODEL and body["id"] == "req-1"
    (out,) = body["outputs"]
    assert out["name"] == "output" and out["datatype"] == "FP32"
    assert out["shape"] == [4, 16]
    expected = [v for row in golden["outputs"] for v in row]
    # Through JSON and back: the node's answer is bit-identical to the golden file.
    decoded = json.loads(json.dumps(out["data"]))
    assert (
        np.array(decoded, dtype=np.float32).tobytes()
        == np.array(expected, dtype=np.float32).tobytes()
    )

    # Single rows give the same bits as the batch.
    status, body = service.handle(
        "POST", f"/v2/models/{MODEL}/infer", _infer_body(golden["inputs"][2:3])
    )
    assert status == 200 and body["outputs"][0]["data"] == golden["outputs"][2]


def test_metadata_and_state_evidence(service: node.NodeService, store: FakeS3) -> None:
    assert service.handle("GET", f"/v2/models/{MODEL}", b"")[0] == 503
    assert service.load().ok
    manifest_bytes = (_store_dir(store) / netmanifest.MANIFEST_NAME).read_bytes()
    manifest_sha = hashlib.sha256(manifest_bytes).hexdigest()

    status, meta = service.handle("GET", f"/v2/models/{MODEL}", b"")
    assert status == 200
    assert meta["name"] == MODEL and meta["platform"] == "drillbook-mlp"
    assert meta["versions"] == [manifest_sha[:12]]
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]
    assert meta["outputs"] == [{"name": "output", "datatype": "FP32", "shape": [-1, 16]}]

    status, state = service.handle("GET", "/v2/node/state", b"")
    assert status == 200
    assert state["state"] == "ready" and state["error"] is None
    assert state["manifest_sha256"] == manifest_sha
    assert state["loaded_utc"].endswith("Z")
    manifest = netmanifest.Manifest.from_json(manifest_bytes)
    assert [(f["path"], f["sha256"], f["ok"]) for f in state["files"]] == [
        (f.path, f.sha256, True) for f in manifest.files
    ]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v2/health/live", 200),
        ("GET", "/v2", 200),
        ("GET", "/nope", 404),
        ("GET", "/v2/models/other", 404),
        ("POST", "/v2/models/other/infer", 404),
        ("POST", "/v2/repository/models/other/load", 404),
        ("POST", "/v2/health/live", 405),
        ("GET", f"/v2/models/{MODEL}/infer", 405),
        ("GET", f"/v2/repository/models/{MODEL}/load", 405),
        ("DELETE", "/v2/node/state", 405),
    ],
)
def test_routing(service: node.NodeService, method: str, path: str, status: int) -> None:
    got, body = service.handle(method, path, b"")
    assert got == status
    if status >= 400:
        assert "error" in body


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda r: r.clear(), "inputs"),
        (lambda r: r["inputs"][0].update(name="x"), "named"),
        (lambda r: r["inputs"][0].update(datatype="INT32"), "datatype"),
        (lambda r: r["inputs"][0].update(shape=[1, 63]), "shape"),
        (lambda r: r["inputs"][0].update(shape=[0, 64]), "shape"),
        (lambda r: r["inputs"][0].update(shape=[True, 64]), "shape"),
        (lambda r: r["inputs"][0].update(data=[0.5] * 63), "values"),
        (lambda r: r["inputs"][0].update(data=["1.0"] * 64), "numbers"),
        (lambda r: r["inputs"][0].update(data=[True] * 64), "numbers"),
        (lambda r: r["inputs"][0].update(data=[1e39] * 64), "float32 range"),
        (lambda r: r["inputs"].append(r["inputs"][0]), "exactly one"),
    ],
)
def test_infer_rejects_bad_input(
    service: node.NodeService, model_src: tuple[Path, Path], mutate: Any, fragment: str
) -> None:
    assert service.load().ok
    request = json.loads(_infer_body(_golden(model_src)["inputs"][:1]))
    mutate(request)
    status, body = service.handle("POST", f"/v2/models/{MODEL}/infer", json.dumps(request).encode())
    assert status == 400
    assert fragment in body["error"]


def test_infer_non_finite_output_is_a_client_error(
    service: node.NodeService, model_src: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert service.load().ok

    def overflowing(*_args: Any) -> np.ndarray:
        return np.full((1, 16), np.nan, dtype=np.float32)

    monkeypatch.setattr(node_runtime, "forward", overflowing)
    body = _infer_body(_golden(model_src)["inputs"][:1])
    status, payload = service.handle("POST", f"/v2/models/{MODEL}/infer", body)
    assert status == 400 and "non-finite" in payload["error"]


def test_infer_rejects_non_json_and_accepts_nested(
    service: node.NodeService, model_src: tuple[Path, Path]
) -> None:
    assert service.load().ok
    url = f"/v2/models/{MODEL}/infer"
    assert service.handle("POST", url, b"{not json")[0] == 400
    assert service.handle("POST", url, b"[1, 2]")[0] == 400
    golden = _golden(model_src)
    nested = {
        "inputs": [
            {"name": "input", "shape": [2, 64], "datatype": "FP32", "data": golden["inputs"][:2]}
        ]
    }
    status, body = service.handle("POST", url, json.dumps(nested).encode())
    assert status == 200
    assert body["outputs"][0]["data"] == golden["outputs"][0] + golden["outputs"][1]


def test_reload_detects_corruption_and_drops_old_weights(
    service: node.NodeService, store: FakeS3, model_src: tuple[Path, Path]
) -> None:
    assert service.load().ok
    shard = _store_dir(store) / "model-00002-of-00002.safetensors"
    original = shard.read_bytes()
    _corrupt(shard)

    status, body = service.handle("POST", f"/v2/repository/models/{MODEL}/load", b"")
    assert 400 <= status < 600 and status != 200
    assert "model-00002-of-00002.safetensors" in body["error"]
    assert body["state"] == "failed"
    status, ready = service.handle("GET", "/v2/health/ready", b"")
    assert status == 503 and ready["state"] == "failed" and ready["error"]
    infer = _infer_body(_golden(model_src)["inputs"][:1])
    assert service.handle("POST", f"/v2/models/{MODEL}/infer", infer)[0] == 503
    _, state = service.handle("GET", "/v2/node/state", b"")
    bad = [f for f in state["files"] if not f["ok"]]
    assert [f["path"] for f in bad] == ["model-00002-of-00002.safetensors"]
    assert bad[0]["sha256"] != bad[0]["expected_sha256"]

    # Restoring the store copy and reloading brings the node back.
    shard.write_bytes(original)
    status, body = service.handle("POST", f"/v2/repository/models/{MODEL}/load", b"")
    assert status == 200 and body["state"] == "ready"
    assert service.handle("POST", f"/v2/models/{MODEL}/infer", infer)[0] == 200
    # Only the live pull stays in the cache.
    assert len(list(service.cache_dir.iterdir())) == 1


def test_the_cache_files_hold_the_verified_bytes_the_node_serves(
    service: node.NodeService, store: FakeS3
) -> None:
    """The pull lands in the cache files themselves (mapped): after a load, every file of the
    live pull directory is byte for byte the store's copy, and the tensors are views of it."""
    assert service.load().ok
    (pull,) = service.cache_dir.iterdir()
    manifest = netmanifest.Manifest.from_json((pull / netmanifest.MANIFEST_NAME).read_bytes())
    for f in manifest.files:
        assert hashlib.sha256((pull / f.path).read_bytes()).hexdigest() == f.sha256
        assert (pull / f.path).read_bytes() == (_store_dir(store) / f.path).read_bytes()
    model = service.current()
    assert model is not None
    assert all(not w.flags.writeable for w in model.weights.values())


def test_a_pull_never_reuses_a_cache_directory_another_process_left(
    service: node.NodeService
) -> None:
    """The cache files are served mapped: a new process on the same volume must not truncate a
    file an older one may still map, so a taken pull directory is skipped."""
    taken = service.cache_dir / "pull-0001"
    taken.mkdir(parents=True)
    (taken / "config.json").write_bytes(b"another process's file")
    assert service.load().ok
    assert (taken / "config.json").read_bytes() == b"another process's file"
    assert (service.cache_dir / "pull-0002" / "config.json").is_file()


def test_a_full_cache_volume_fails_the_load_before_any_byte_is_fetched(
    service: node.NodeService, store: FakeS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache files are reserved before the fetch: a full volume is an error the node
    reports (ENOSPC), not a SIGBUS on a mapped page halfway through the model."""
    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(node_runtime.os, "posix_fallocate", full)
    outcome = service.load()
    assert not outcome.ok and outcome.error is not None
    assert "cannot write the model cache" in outcome.error and "No space left" in outcome.error
    shards = [k for k in store.reads if k.endswith(".safetensors")]
    assert shards == [], f"shards were fetched although the cache had no room: {shards}"
    assert service.handle("GET", "/v2/health/ready", b"")[0] == 503
    assert list(service.cache_dir.iterdir()) == []  # the failed pull leaves nothing behind


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda d: (d / netmanifest.MANIFEST_NAME).unlink(), "NoSuchKey"),
        (lambda d: (d / netmanifest.MANIFEST_NAME).write_text("{}"), "bad manifest"),
        (lambda d: (d / netconfig.CONFIG_NAME).unlink(), "config.json"),
        (
            lambda d: (d / netmanifest.MANIFEST_NAME).write_text(
                (d / netmanifest.MANIFEST_NAME).read_text().replace(MODEL, "someone-else")
            ),
            "someone-else",
        ),
    ],
)
def test_initial_load_failures_stay_not_ready(
    service: node.NodeService, store: FakeS3, damage: Any, fragment: str
) -> None:
    damage(_store_dir(store))
    outcome = service.load()
    assert not outcome.ok and outcome.error is not None and fragment in outcome.error
    status, body = service.handle("GET", "/v2/health/ready", b"")
    assert status == 503
    assert body == {"ready": False, "state": "failed", "error": outcome.error}
    assert service.handle("GET", f"/v2/models/{MODEL}/ready", b"")[0] == 503


def test_unload(service: node.NodeService) -> None:
    assert service.load().ok
    status, body = service.handle("POST", f"/v2/repository/models/{MODEL}/unload", b"")
    assert status == 200 and body["state"] == "unloaded"
    status, ready = service.handle("GET", "/v2/health/ready", b"")
    assert status == 503 and ready["state"] == "unloaded"
    _, index = service.handle("POST", "/v2/repository/index", b"")
    assert index["models"][0]["state"] == "UNLOADED"


def test_reload_keeps_serving_until_swap(
    service: node.NodeService, store: FakeS3, model_src: tuple[Path, Path]
) -> None:
    assert service.load().ok
    store.gate = threading.Event()
    reload_thread = threading.Thread(target=service.load)
    reload_thread.start()
    try:
        assert store.waiting.wait(10)
        infer = _infer_body(_golden(model_src)["inputs"][:1])
        assert service.handle("POST", f"/v2/models/{MODEL}/infer", infer)[0] == 200
        assert service.handle("GET", "/v2/node/state", b"")[1]["reloading"] is True
    finally:
        store.gate.set()
        reload_thread.join(30)
    assert service.state == "ready"
    assert service.handle("GET", "/v2/node/state", b"")[1]["reloading"] is False


# -- over HTTP --------------------------------------------------------------------


def _request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.fixture
def http_node(service: node.NodeService) -> Iterator[tuple[node.NodeService, int]]:
    server = node_http.make_server(service, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield service, server.port
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_http_health_answers_while_loading(
    http_node: tuple[node.NodeService, int], store: FakeS3, model_src: tuple[Path, Path]
) -> None:
    service, port = http_node
    store.gate = threading.Event()
    loader = service.start()
    assert store.waiting.wait(10)
    assert _request(port, "GET", "/v2/health/live") == (200, {"live": True})
    status, body = _request(port, "GET", "/v2/health/ready")
    assert status == 503 and body["state"] == "loading"
    store.gate.set()
    loader.join(30)
    assert _request(port, "GET", "/v2/health/ready") == (200, {"ready": True})

    golden = _golden(model_src)
    status, body = _request(
        port, "POST", f"/v2/models/{MODEL}/infer", _infer_body(golden["inputs"])
    )
    assert status == 200
    assert body["outputs"][0]["data"] == [v for row in golden["outputs"] for v in row]
    status, body = _request(port, "POST", f"/v2/models/{MODEL}/infer", b"{")
    assert status == 400 and "error" in body
    assert _request(port, "GET", "/missing")[0] == 404


def test_http_keep_alive_and_oversized_body(http_node: tuple[node.NodeService, int]) -> None:
    _, port = http_node
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for _ in range(3):
            conn.request("GET", "/v2/health/live")
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read()) == {"live": True}
        conn.putrequest("POST", f"/v2/models/{MODEL}/infer")
        conn.putheader("Content-Length", str(node_http.MAX_BODY_BYTES + 1))
        conn.endheaders()
        response = conn.getresponse()
        assert response.status == 413
        response.read()
    finally:
        conn.close()


# -- as a process ------------------------------------------------------------------


def test_process_fails_cleanly_without_store_and_stops_on_sigterm(tmp_path: Path) -> None:
    # Nothing listens on this port (bound, never accepted), so every S3 call fails fast.
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        dead_port = blocker.getsockname()[1]
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            PYTHONPATH=str(REPO_ROOT),
            AWS_CONFIG_FILE=str(tmp_path / "none"),
            AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
        )
        cache = tmp_path / "cache"
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "lab.node",
                "--endpoint", f"http://127.0.0.1:{dead_port}",
                "--bucket", BUCKET, "--prefix", PREFIX, "--model-name", MODEL,
                "--port", "0", "--cache-dir", str(cache),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        lines: queue.Queue[str] = queue.Queue()
        collected: list[str] = []

        def pump() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                lines.put(line)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            port = None
            while port is None:
                line = lines.get(timeout=30)
                collected.append(line)
                match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
                if match:
                    port = int(match.group(1))
            assert _request(port, "GET", "/v2/health/live") == (200, {"live": True})
            deadline = 60.0
            state: dict[str, Any] = {}
            while deadline > 0:
                _, state = _request(port, "GET", "/v2/node/state")
                if state["state"] == "failed":
                    break
                threading.Event().wait(0.2)
                deadline -= 0.2
            assert state["state"] == "failed"
            assert "manifest.json" in state["error"]
            status, body = _request(port, "GET", "/v2/health/ready")
            assert status == 503 and body["state"] == "failed"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
            reader.join(10)
            if proc.stderr is not None:
                proc.stderr.close()
        while not lines.empty():
            collected.append(lines.get())
    log_text = "".join(collected)
    assert "state loading -> failed" in log_text
    assert "stopped" in log_text
