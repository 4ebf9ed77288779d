"""SHA-256 manifests and streaming hashing.

A manifest lists every file of an asset with its size and SHA-256. Data is hashed while it flows
(from the store, from a backup, into the store): :class:`HashingReader` wraps any readable stream,
so a restore that uploads a file has its checksum when the upload ends, without reading it again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

MANIFEST_FORMAT = "drillbook-manifest/1"
CHUNK = 8 * 1024 * 1024


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    model: str
    files: tuple[ManifestEntry, ...]
    created_utc: str
    raw_sha256: str  # hash of the manifest document itself: the identity of this exact version

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "manifest") -> Manifest:
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{source}: not JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"{source}: not a {MANIFEST_FORMAT} document")
        files = []
        for i, f in enumerate(doc.get("files") or []):
            try:
                files.append(ManifestEntry(str(f["path"]), int(f["size"]), str(f["sha256"]).lower()))
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{source}: files[{i}] is malformed: {exc}") from exc
        if not files:
            raise ValueError(f"{source}: lists no files")
        return cls(str(doc.get("model", "")), tuple(files), str(doc.get("created_utc", "")),
                   hashlib.sha256(data).hexdigest())

    @classmethod
    def load(cls, path: Path) -> Manifest:
        return cls.from_bytes(path.read_bytes(), source=str(path))

    def to_json(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "model": self.model,
            "created_utc": self.created_utc,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files],
        }

    def entry(self, path: str) -> ManifestEntry | None:
        for f in self.files:
            if f.path == path:
                return f
        return None


class HashingReader:
    """A read-only stream that hashes and counts what passes through it."""

    def __init__(self, inner: Readable) -> None:
        self._inner = inner
        self._h = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._inner.read(size)
        self._h.update(data)
        self.size += len(data)
        return data

    def readable(self) -> bool:
        return True

    @property
    def sha256(self) -> str:
        return self._h.hexdigest()


def sha256_stream(stream: Readable | BinaryIO, chunk: int = CHUNK) -> tuple[str, int]:
    """Hash a stream to its end in bounded memory; returns (hex digest, bytes read)."""
    h = hashlib.sha256()
    n = 0
    while True:
        block = stream.read(chunk)
        if not block:
            break
        h.update(block)
        n += len(block)
    return h.hexdigest(), n


def sha256_file(path: Path) -> tuple[str, int]:
    with path.open("rb") as fh:
        return sha256_stream(fh)
