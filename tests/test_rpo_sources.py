"""Restore-point sources say what went wrong in their own words, within bounded time (no lab):
S3's code and message, restic's stderr when a dump stream ends early, a frozen store declared
unreachable in seconds."""

from __future__ import annotations

import io
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.stub import Stubber

from harness.errors import TargetUnreachable
from harness.inventory import ResticTarget, S3Target, Secret
from harness.targets.restic import ResticRepo
from harness.targets.s3 import S3Store, StoreError


def target(endpoint: str = "http://127.0.0.1:9") -> S3Target:
    return S3Target("unit-store", endpoint, "us-east-1", Secret("AKIDUNIT"), Secret("s3cr3t"),
                    drill_safe=True)


def test_a_missing_object_keeps_the_stores_own_words() -> None:
    store = S3Store(target())
    with Stubber(store._client) as stub:
        stub.add_client_error("get_object", service_error_code="NoSuchKey",
                              service_message="The specified key does not exist.",
                              http_status_code=404)
        stub.add_client_error("get_object", service_error_code="NoSuchKey",
                              service_message="The specified key does not exist.",
                              http_status_code=404)
        with pytest.raises(StoreError) as info:
            store.open("secondary", "pgdump/annotations/x.dump")
        assert store.read_bytes("secondary", "pgdump/annotations/x.dump") is None
    text = str(info.value)
    assert "NoSuchKey: The specified key does not exist." in text
    assert "s3://secondary/pgdump/annotations/x.dump" in text
    assert info.value.code == "NoSuchKey" and S3Store.is_missing(info.value)
    assert isinstance(info.value, TargetUnreachable)  # a check that could not run


@pytest.fixture
def frozen_store() -> Iterator[str]:
    """A listener that accepts connections and never answers (a gateway under SIGSTOP)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()


def test_a_frozen_store_is_unreachable_within_the_probe_timeout(frozen_store: str) -> None:
    store = S3Store(target(frozen_store), probe_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(TargetUnreachable, match="unreachable during ping"):
        store.ping()
    assert time.monotonic() - started < 8.0  # one attempt of 1 s (on a loaded machine), not minutes


def fake_restic(tmp_path: Path) -> Path:
    """A 'restic' that writes half a tar stream, complains on stderr and exits 1."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"x" * 20000
        info = tarfile.TarInfo("srv/w/model.safetensors")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    half = tmp_path / "half.tar"
    half.write_bytes(buf.getvalue()[:6000])
    script = tmp_path / "restic"
    script.write_text(f"#!/bin/sh\ncat {half}\n"
                      "echo 'Fatal: load(<data/5e7f0d6c>): ciphertext verification failed' >&2\n"
                      "exit 1\n")
    script.chmod(0o755)
    return script


def test_restic_failing_mid_stream_gives_restics_reason(tmp_path: Path) -> None:
    repo = ResticRepo(ResticTarget("unit-backups", str(tmp_path / "repo"), Secret("pw"), None,
                                   None, drill_safe=False), binary=str(fake_restic(tmp_path)))
    with pytest.raises(TargetUnreachable) as info, repo.dump_tree("abc123", "/srv/w") as files:
        for _, stream in files:
            stream.read()
    text = str(info.value)
    assert "ciphertext verification failed" in text and "exit 1" in text
    assert "abc123" in text
