"""Manifests and streaming hashing (no I/O beyond tmp files)."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from harness.integrity import HashingReader, Manifest, sha256_file, sha256_stream


def test_hashing_reader_hashes_what_passes_through() -> None:
    data = b"x" * 1_000_003
    reader = HashingReader(io.BytesIO(data))
    out = b""
    while chunk := reader.read(65536):
        out += chunk
    assert out == data
    assert reader.sha256 == hashlib.sha256(data).hexdigest()
    assert reader.size == len(data)


def test_sha256_stream_and_file(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"abc" * 5000)
    assert sha256_file(p) == (hashlib.sha256(b"abc" * 5000).hexdigest(), 15000)
    assert sha256_stream(io.BytesIO(b""))[1] == 0


def _manifest(files: list[dict[str, object]]) -> bytes:
    return json.dumps({"format": "drillbook-manifest/1", "model": "m", "created_utc": "x",
                       "files": files}).encode()


def test_manifest_round_trip_and_identity() -> None:
    raw = _manifest([{"path": "a", "size": 3, "sha256": "AB"}])
    m = Manifest.from_bytes(raw)
    assert m.entry("a") is not None and m.entry("a").sha256 == "ab"  # type: ignore[union-attr]
    assert m.raw_sha256 == hashlib.sha256(raw).hexdigest()
    assert Manifest.from_bytes(json.dumps(m.to_json()).encode()).files == m.files


@pytest.mark.parametrize("raw, needle", [
    (b"not json", "not JSON"),
    (b'{"format": "other"}', "not a drillbook-manifest/1"),
    (_manifest([]), "lists no files"),
    (_manifest([{"path": "a"}]), "files[0] is malformed"),
])
def test_manifest_rejects_bad_documents(raw: bytes, needle: str) -> None:
    with pytest.raises(ValueError, match=needle.replace("[", r"\[")):
        Manifest.from_bytes(raw)
